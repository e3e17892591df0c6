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
import random

from mmengine.config import Config

from nas_tasks.diagnostics import RANDOM_ARCHITECTURES, STANDALONE_RECIPES, RandomArchitectures
from nas_tasks.errors import NasError
from nas_tasks.search_split_training import SearchSplitFineTuning

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
class FNAParameterAdaptation(SearchSplitFineTuning):
    """An FNA architecture trained by the parameter-adaptation recipe and scored
    as the search scored its result.

    ``train_config`` is an FNA fine-tuning config (its ``model.backbone`` an
    ``FNABackbone``: ``deeplabv3_fna_finetune_toy.py``,
    ``retinanet_fna_finetune_toy.py`` ...). Its backbone takes the candidate's
    arch and starts from the search's seed remapped into it
    (``FNABackbone(seed=...)``, with the search's ``width_noise``), instead of
    the weights file the config names (the search's exported weights of its
    own result). The search's training images, the score (mIoU, COCO bbox mAP
    by the search's ``val_evaluator`` on its ``val_dataloader`` split), the
    seeding and the resume are :class:`~nas_tasks.search_split_training.SearchSplitFineTuning`'s,
    and so are the arguments.
    """

    space = FNA_SPACE

    def check_train_config(self, cfg: Config, search_config: Config, path: str) -> None:
        seed = check_seed_settings(_super_net_settings(search_config).get('seed'))
        backbone = cfg.get('model', {}).get('backbone', {})
        if backbone.get('type') != 'FNABackbone':
            raise NasError(f"{path}: diagnose.standalone.train_config must be an FNA fine-tuning "
                           "config (model.backbone=dict(type='FNABackbone', ...)), got backbone "
                           f"type {backbone.get('type')!r}")
        backbone.pop('weights', None)
        backbone.update(seed=seed, width_noise=float(
            search_config.model.backbone.get('width_noise', 0.0)))

    def place_arch(self, cfg: Config, arch: dict) -> None:
        cfg.model.backbone.arch = FNA_SPACE.to_document(arch)
