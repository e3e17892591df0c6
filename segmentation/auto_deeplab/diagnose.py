"""Auto-DeepLab's random baseline (``tools/diagnose.py CONFIG WORK_DIR --random N``).

The search is differentiable: it ends with one cell and one path, so its
diagnosis trains the found architecture beside random architectures of the
same space, all by the task's fine-tuning recipe. Named in a search config's
``diagnose`` section::

    diagnose = dict(
        random_architectures=dict(type='AutoDeepLabRandomArchitectures'),
        standalone=dict(type='AutoDeepLabFineTuning',
                        train_config='configs/auto_deeplab/auto_deeplab_finetune_toy.py'))

:class:`AutoDeepLabRandomArchitectures` draws what the decoding can return:
a cell whose every block takes two different inputs among those it may
take, each through one of the 7 ops (never 'none', as the decoding), and a
path through the search's trellis (its ``num_layers``; from the stem at
level 0, one level at most per layer, levels 0..3, as the Viterbi decoding
moves), uniform over all such paths. The filter multiplier is the one the
search exports. The search has no hard constraint, so every draw counts.

:class:`AutoDeepLabFineTuning` trains an architecture with the fine-tuning
config (``auto_deeplab_finetune_toy.py``; ``autodeeplab_s_cityscapes.py`` for
Cityscapes), its backbone taking the arch (at the config's own
``filter_multiplier`` when it sets one) from random weights, on the search's
training split, and scores its mIoU on the split the search scored its
result on.
"""
from __future__ import annotations

import inspect
import itertools
import random

from mmengine.config import Config

from backbones.auto_deeplab.arch import AUTO_DEEPLAB_SPACE, CELL_OPS, NUM_LEVELS
from backbones.auto_deeplab.search_network import AutoDeepLabSearchNet
from nas_tasks.diagnostics import RANDOM_ARCHITECTURES, STANDALONE_RECIPES, RandomArchitectures
from nas_tasks.errors import NasError
from nas_tasks.search_split_training import SearchSplitFineTuning
from segmentation.auto_deeplab.search import AutoDeepLabSearch


def _default(cls, name: str):
    return inspect.signature(cls).parameters[name].default


def search_shape(config: Config) -> tuple[int, int, int]:
    """(layers, blocks per cell, exported filter multiplier) of an Auto-DeepLab search config."""
    search = config.get('differentiable_search', {})
    if search.get('type') != 'AutoDeepLabSearch':
        raise NasError("Auto-DeepLab's random baseline needs an Auto-DeepLab search config "
                       "(differentiable_search=dict(type='AutoDeepLabSearch', ...)), got "
                       f"{search.get('type')!r}")
    network = search.get('network', {})
    return (int(network.get('num_layers', _default(AutoDeepLabSearchNet, 'num_layers'))),
            int(network.get('block_multiplier', _default(AutoDeepLabSearchNet, 'block_multiplier'))),
            int(search.get('export_filter_multiplier',
                           _default(AutoDeepLabSearch, 'export_filter_multiplier'))))


def random_cell(blocks: int, rng: random.Random) -> list[list]:
    """Block b: two different inputs of 0..b+1 (ascending, as decoded), an op of CELL_OPS each."""
    cell = []
    for block in range(blocks):
        for source in sorted(rng.sample(range(block + 2), 2)):
            cell.append([source, rng.choice(CELL_OPS)])
    return cell


def _moves(level: int) -> list[int]:
    return [v for v in (level - 1, level, level + 1) if 0 <= v < NUM_LEVELS]


def path_counts(num_layers: int) -> list[list[int]]:
    """``counts[l][k]``: the number of valid ways to go on from level k after layer l - 1
    (layer -1 is the stem) through the remaining layers l .. L-1."""
    counts = [[0] * NUM_LEVELS for _ in range(num_layers)] + [[1] * NUM_LEVELS]
    for layer in reversed(range(num_layers)):
        for level in range(NUM_LEVELS):
            counts[layer][level] = sum(counts[layer + 1][v] for v in _moves(level))
    return counts


def random_path(num_layers: int, rng: random.Random) -> list[int]:
    """A path uniform over all valid paths of ``num_layers`` layers from the stem at level 0."""
    counts = path_counts(num_layers)
    path, level = [], 0
    for layer in range(num_layers):
        choices = _moves(level)
        level = rng.choices(choices, weights=[counts[layer + 1][v] for v in choices])[0]
        path.append(level)
    return path


def all_paths(num_layers: int) -> list[list[int]]:
    """Every valid path (for checks on small trellises)."""
    return [list(path) for path in itertools.product(range(NUM_LEVELS), repeat=num_layers)
            if all(abs(b - a) <= 1 for a, b in zip((0, *path), path))]


@RANDOM_ARCHITECTURES.register_module()
class AutoDeepLabRandomArchitectures(RandomArchitectures):
    """A random cell and a random path of the search's space (see the module doc)."""

    def __init__(self, config: Config):
        self.num_layers, self.blocks, self.filter_multiplier = search_shape(config)

    def draw(self, rng: random.Random) -> dict:
        arch = dict(cell=random_cell(self.blocks, rng), path=random_path(self.num_layers, rng),
                    filter_multiplier=self.filter_multiplier)
        AUTO_DEEPLAB_SPACE.validate(arch)
        return arch


@STANDALONE_RECIPES.register_module()
class AutoDeepLabFineTuning(SearchSplitFineTuning):
    """An Auto-DeepLab arch trained by a fine-tuning config (an ``AutoDeepLabBackbone``
    model) from random weights and scored by the search's mIoU on its val split.
    Arguments: :class:`~nas_tasks.search_split_training.SearchSplitFineTuning`'s."""

    space = AUTO_DEEPLAB_SPACE

    def check_train_config(self, cfg: Config, search_config: Config, path: str) -> None:
        backbone = cfg.get('model', {}).get('backbone', {})
        if backbone.get('type') != 'AutoDeepLabBackbone':
            raise NasError(f"{path}: diagnose.standalone.train_config must be an Auto-DeepLab "
                           "fine-tuning config (model.backbone=dict(type='AutoDeepLabBackbone', "
                           f"...)), got backbone type {backbone.get('type')!r}")
        backbone.pop('init_cfg', None)   # from scratch, as the fine-tuning recipe trains

    def place_arch(self, cfg: Config, arch: dict) -> None:
        cfg.model.backbone.arch = AUTO_DEEPLAB_SPACE.to_document(arch)
