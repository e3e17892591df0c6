"""Auto-DeepLab's random baseline for tools/diagnose.py: random cells and trellis paths
of the search's space, and the fine-tuning recipe that trains and scores each
(segmentation/auto_deeplab/diagnose.py)."""
import collections
import random

import pytest
import torch

from conftest import (REPO, assert_one_line, assert_seeded_restartable_miou_training,
                      built_diagnose_section)

TOY_SEARCH = 'configs/auto_deeplab/auto_deeplab_toy.py'
CITYSCAPES_SEARCH = 'configs/auto_deeplab/auto_deeplab_cityscapes.py'
TOY_FINETUNE = 'configs/auto_deeplab/auto_deeplab_finetune_toy.py'


def search_config(config: str = TOY_SEARCH, **options):
    from nas_tasks.builder import load_config
    from nas_tasks.modules import register_all_modules
    register_all_modules()
    return load_config(str(REPO / config), options)


def random_architectures(cfg):
    from nas_tasks.builder import build_component
    from nas_tasks.diagnostics import RANDOM_ARCHITECTURES
    return build_component(RANDOM_ARCHITECTURES, dict(type='AutoDeepLabRandomArchitectures'),
                           'diagnose.random_architectures',
                           default_args=dict(config=cfg, space=None, seed=1))


def recipe(cfg, train_config=TOY_FINETUNE, **settings):
    from nas_tasks.builder import build_component
    from nas_tasks.diagnostics import STANDALONE_RECIPES
    return build_component(STANDALONE_RECIPES,
                           dict(type='AutoDeepLabFineTuning', train_config=str(REPO / train_config),
                                **settings),
                           'diagnose.standalone', default_args=dict(config=cfg, space=None, seed=1))


# -- the random architectures -----------------------------------------------------------

def test_draws_are_valid_seeded_and_of_the_searchs_shape():
    from backbones.auto_deeplab import AUTO_DEEPLAB_SPACE
    from backbones.auto_deeplab.arch import CELL_OPS
    cfg = search_config()
    draws = random_architectures(cfg)
    archs = [draws.draw(random.Random(seed)) for seed in range(60)]
    assert archs == [draws.draw(random.Random(seed)) for seed in range(60)]   # seeded
    assert len({repr(arch) for arch in archs}) == len(archs)                  # and not constant
    inputs, ops = collections.Counter(), collections.Counter()
    for arch in archs:
        AUTO_DEEPLAB_SPACE.validate(arch)
        assert len(arch['path']) == 6 and arch['filter_multiplier'] == 20    # toy L, exported F
        assert len(arch['cell']) == 2 * 5
        for block in range(5):
            (first, op1), (second, op2) = arch['cell'][2 * block: 2 * block + 2]
            assert 0 <= first < second <= block + 1      # two different inputs, as decoded
            inputs[(block, first)] += 1
            inputs[(block, second)] += 1
            ops.update([op1, op2])
    assert set(ops) == set(CELL_OPS) and 'none' not in ops
    assert len(inputs) == sum(block + 2 for block in range(5))  # every input of every block drawn


def test_paths_follow_the_trellis_and_are_uniform_over_all_valid_paths():
    from backbones.auto_deeplab.arch import check_path
    from segmentation.auto_deeplab.diagnose import all_paths, path_counts, random_path
    valid = all_paths(4)
    for path in valid:
        check_path(path)                                  # the space's own rule
        assert path[0] in (0, 1)                          # from the stem at level 0
    assert len(valid) == path_counts(4)[0][0] == 34
    assert path_counts(8)[0][0] == len(all_paths(8))
    rng = random.Random(0)
    counts = collections.Counter(tuple(random_path(4, rng)) for _ in range(6800))
    assert set(counts) == {tuple(path) for path in valid}
    # 200 expected per path; a walk uniform at each step would give [0, 0, 0, 0] 1/16 of
    # the draws (425) and [0, 1, 2, 1] 1/54 (126).
    assert all(150 <= n <= 250 for n in counts.values()), counts


def test_every_drawn_genotype_builds_and_runs():
    from backbones.auto_deeplab import AutoDeepLabBackbone
    draws = random_architectures(search_config())
    for seed in range(8):
        arch = draws.draw(random.Random(seed))
        backbone = AutoDeepLabBackbone(arch, filter_multiplier=2).eval()
        with torch.no_grad():
            low, last = backbone(torch.randn(1, 3, 64, 64))
        assert last.shape[1] == backbone.out_channels[1] and torch.isfinite(last).all()


# -- the recipe ----------------------------------------------------------------------------

def test_the_recipe_trains_the_searchs_images_and_scores_its_miou():
    from nas_tasks.built_datasets import PARSED_ONCE_TYPE
    cfg = search_config()
    cfg.train_dataloader.dataset.data_prefix = dict(img_path='leftImg8bit/search',
                                                    seg_map_path='gtFine/search')
    standalone = recipe(cfg)
    assert standalone.score_name == 'mIoU'
    dataset = standalone.train_cfg.train_dataloader.dataset
    assert dataset.type == PARSED_ONCE_TYPE
    assert dataset.dataset.data_prefix.img_path == 'leftImg8bit/search'       # the search's split
    finetune = search_config(TOY_FINETUNE)
    assert dataset.dataset.pipeline == finetune.train_dataloader.dataset.pipeline
    # The candidate's arch replaces the fine-tuning config's; its own F stays.
    arch = random_architectures(cfg).draw(random.Random(0))
    run_cfg = standalone.train_cfg.copy()
    standalone.place_arch(run_cfg, arch)
    assert run_cfg.model.backbone.arch['arch'] == arch
    assert run_cfg.model.backbone.filter_multiplier == 8


@pytest.mark.parametrize('config, train_config, message', [
    (TOY_SEARCH, 'configs/fna/deeplabv3_fna_finetune_toy.py', 'must be an Auto-DeepLab fine-tuning'),
    ('configs/fna/fna_deeplabv3_toy.py', TOY_FINETUNE, 'needs an Auto-DeepLab search config'),
])
def test_a_wrong_config_is_one_line(config, train_config, message):
    from nas_tasks.errors import NasError
    cfg = search_config(config)
    with pytest.raises(NasError) as error:
        if 'fna_deeplabv3' in config:
            random_architectures(cfg)
        else:
            recipe(cfg, train_config)
    assert_one_line(str(error.value), message)


@pytest.mark.parametrize('config', [TOY_SEARCH, CITYSCAPES_SEARCH])
def test_the_search_configs_diagnose_sections_build(config):
    cfg = search_config(config, **{'diagnose.num_random': 4})  # what --random 4 sets
    draws, settings = built_diagnose_section(cfg)
    assert len(draws.draw(random.Random(0))['path']) == (6 if config == TOY_SEARCH else 12)
    standalone = recipe(cfg, settings.standalone['train_config'])
    assert standalone.score_name == 'mIoU'


@pytest.mark.slow  # three short mmseg trainings (about a minute on the loaded 2-core VM)
def test_a_tiny_training_is_seeded_restarts_and_scores_the_searchs_miou(toy_cityscapes, tmp_path):
    cfg = search_config(data_root=f'{toy_cityscapes}/')
    standalone = recipe(cfg, keep_checkpoints=True, cfg_options=dict(
        train_cfg=dict(max_iters=4, val_interval=4), default_hooks=dict(checkpoint=dict(interval=2)),
        model=dict(backbone=dict(filter_multiplier=2), decode_head=dict(channels=16, c1_channels=8))))
    assert_seeded_restartable_miou_training(standalone, random_architectures(cfg), tmp_path)
