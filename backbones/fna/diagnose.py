"""FNA's random baseline (``tools/diagnose.py CONFIG WORK_DIR --random N``).

FNA's search is differentiable: it ends with one architecture and no
candidates to rank, so its diagnosis compares the adapted architecture with
random architectures of the same super network, each trained the way the
found one is. Named in an FNA search config's ``diagnose`` section:

    diagnose = dict(
        random_architectures=dict(type='FNARandomArchitectures'),
        standalone=dict(type='FNAParameterAdaptation',
                        train_config='configs/fna/deeplabv3_fna_finetune_toy.py'))

:class:`FNARandomArchitectures` draws, for every searchable layer of the
super network the config builds, one of its candidate ops uniformly (the
MBConv kernels and expansions, and skip in every layer but a stage's
first), as the search's weight steps draw their paths before the
architecture steps start. FNA's search has no hard constraint (its cost is a
term of the architecture loss), so every draw counts. The seed network's own
architecture is reported beside them (``references()['seed']``): did the
adaptation beat simply keeping the seed's layout?

:class:`FNAParameterAdaptation` trains an architecture as FNA's parameter
adaptation does (the official ``remap_for_paramadapt``): the seed's weights
remapped into it (:func:`~backbones.fna.adapted.remap_into_adapted`, what the
search's export writes to ``adapted_weights.pth``), then the fine-tuning
config's schedule, through an mmengine Runner; scored on the held-out split
the search scored its result on, with the search's evaluator.
"""
from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from nas_tasks.builder import build_component, load_config
from nas_tasks.built_datasets import parsed_once
from nas_tasks.diagnostics import (RANDOM_ARCHITECTURES, STANDALONE_RECIPES, RandomArchitectures,
                                   StandaloneRecipe)
from nas_tasks.dist import process_local
from nas_tasks.errors import NasError
from nas_tasks.registry import DIFFERENTIABLE_SEARCHES
from nas_tasks.result import Result
from nas_tasks.seeding import seed_for
from nas_tasks.standalone_training import (EVALUATION_KEYS, delete_checkpoints, standalone_runner,
                                           standalone_runner_config, train)

from .adapted import FNA_SPACE
from .layout import SearchLayout
from .seed import seed_definition
from .super_net import check_seed_settings

# The FNASuperNet settings that shape the space (the rest shape the network only).
SPACE_SETTINGS = ('depths', 'kernel_sizes', 'expansions')


def _super_net_settings(config: Config) -> dict:
    backbone = config.get('model', {}).get('backbone', {})
    if backbone.get('type') != 'FNASuperNet':
        raise NasError("FNA's random baseline needs an FNA search config (model.backbone="
                       f"dict(type='FNASuperNet', ...)), got backbone type {backbone.get('type')!r}")
    return backbone


def search_layout(config: Config) -> SearchLayout:
    """The layout of the super network that ``config``'s ``model.backbone`` builds."""
    backbone = _super_net_settings(config)
    seed = check_seed_settings(backbone.get('seed'))
    return SearchLayout(seed_definition(seed['name']),
                        **{key: backbone[key] for key in SPACE_SETTINGS if key in backbone})


@RANDOM_ARCHITECTURES.register_module()
class FNARandomArchitectures(RandomArchitectures):
    """Uniform over each searchable layer's candidate ops of the config's super network.

    A draw is an arch of space ``fna`` (``dict(seed=..., arch_def=...)``, skips
    removed), the form of the search's ``best_arch.json``. Skips make some
    arch_defs likelier than others (a stage of four layers with two skips
    arises from six placements), as they do for the search's sampled paths.
    """

    def __init__(self, config: Config):
        self.layout = search_layout(config)

    def draw(self, rng: random.Random) -> dict:
        ops = [[rng.choice(self.layout.ops(layer)) for layer in range(depth)]
               for depth in self.layout.depths]
        return dict(seed=self.layout.definition.name, arch_def=self.layout.arch_def(ops))

    def references(self) -> dict[str, dict]:
        """The seed's own network ('seed'): its arch_def, which the space accepts."""
        definition = self.layout.definition
        return {'seed': dict(seed=definition.name, arch_def=copy.deepcopy(definition.arch_def))}


@STANDALONE_RECIPES.register_module()
class FNAParameterAdaptation(StandaloneRecipe):
    """An FNA architecture trained by the parameter-adaptation recipe and scored
    as the search scored its result.

    The model and the schedule are ``train_config``'s (a fine-tuning config
    whose ``model.backbone`` is an ``FNABackbone``: ``deeplabv3_fna_finetune_toy.py``,
    ``retinanet_fna_finetune_toy.py`` ...), with ``cfg_options`` merged in.
    Its backbone takes the candidate's arch and starts from the search's seed
    remapped into it (``FNABackbone(seed=...)``, with the search's
    ``width_noise``), instead of the weights file the config names (the
    search's exported weights of its own result). The training images are the
    search's training split (its ``train_dataloader.dataset``) through the
    fine-tuning config's training pipeline; the score is the search's
    ``score_name`` (mIoU, COCO bbox mAP) of its ``val_evaluator`` on its
    ``val_dataloader`` split, one image at a time, as the search evaluates.

    Each candidate trains with ``seed_for(seed, arch)``; its Runner keeps the
    config's checkpoint hook in the candidate's folder and resumes from its
    last checkpoint after a kill.

    Args:
        config, seed: the search config and the diagnosis seed.
        train_config: path of the fine-tuning config.
        cfg_options: a (nested) dict merged into it (e.g. a shorter schedule).
        log_level: of each training's Runner log (console and file).
        keep_checkpoints: keep each training's checkpoints once it is scored.
    """

    def __init__(self, config: Config, seed: int, train_config: str, cfg_options: dict | None = None,
                 log_level: str = 'WARNING', keep_checkpoints: bool = False):
        backbone = _super_net_settings(config)
        self.seed = seed
        self.log_level = log_level
        self.keep_checkpoints = keep_checkpoints
        # The search task: its score, its held-out split and evaluator, its data scope.
        self.search = build_component(DIFFERENTIABLE_SEARCHES, config.differentiable_search,
                                      'differentiable_search', default_args=dict(config=config))
        self.score_name = self.search.score_name
        cfg = load_config(train_config)
        cfg.merge_from_dict(copy.deepcopy(dict(cfg_options or {})))  # merging consumes _delete_ keys
        if cfg.get('model', {}).get('backbone', {}).get('type') != 'FNABackbone':
            raise NasError(f"{train_config}: diagnose.standalone.train_config must be an FNA "
                           "fine-tuning config (model.backbone=dict(type='FNABackbone', ...)), got "
                           f"backbone type {cfg.get('model', {}).get('backbone', {}).get('type')!r}")
        cfg.model.backbone.pop('weights', None)
        cfg.model.backbone.update(seed=check_seed_settings(backbone.get('seed')),
                                  width_noise=float(backbone.get('width_noise', 0.0)))
        cfg.train_dataloader.dataset = self._search_images(config, cfg)
        self.train_cfg = cfg
        self._held_out = None

    @staticmethod
    def _search_images(search_cfg: Config, train_cfg: Config) -> dict:
        """The search's training split, through the fine-tuning pipeline; parsed once
        per process for all the candidates."""
        dataset = copy.deepcopy(search_cfg.train_dataloader.dataset)
        pipeline = train_cfg.train_dataloader.get('dataset', {}).get('pipeline')
        if pipeline is not None and 'pipeline' in dataset:
            dataset.pipeline = copy.deepcopy(pipeline)
        return parsed_once(dataset)

    def train_and_score(self, arch: dict, run_dir: Path) -> Result:
        FNA_SPACE.validate(arch)
        run_dir = Path(run_dir)
        seed = seed_for(self.seed, json.dumps(arch, sort_keys=True))
        cfg = standalone_runner_config(self.train_cfg, run_dir, seed, self.log_level,
                                       left_out=EVALUATION_KEYS)
        cfg.model.backbone.arch = FNA_SPACE.to_document(arch)
        with process_local():  # each rank trains its own candidates
            with standalone_runner(cfg, seed) as runner:
                train_loss = train(runner)
                model = runner.model
            metrics = self._evaluate(model)
        if not self.keep_checkpoints:
            delete_checkpoints(run_dir)
        if train_loss is not None:
            metrics['train_loss'] = train_loss
        return Result(score=self.search.score_of(metrics), metrics=metrics)

    def _evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        with DefaultScope.overwrite_default_scope(self.search.default_scope):
            if self._held_out is None:
                self._held_out = self.search.build_dataset('val')
            return self.search.evaluate(model, self._held_out)
