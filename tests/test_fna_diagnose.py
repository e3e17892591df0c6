"""FNA's random baseline for tools/diagnose.py: random architectures of the config's
super network, the seed's own architecture beside them, and the parameter-adaptation
recipe that trains and scores each (backbones/fna/diagnose.py)."""
import collections
import random

import pytest
import timm

from conftest import (REPO, assert_one_line, assert_seeded_restartable_miou_training,
                      built_diagnose_section)
from search_runs import FNA_DETECTION, FNA_SEGMENTATION

SEG_FINETUNE = 'configs/fna/deeplabv3_fna_finetune_toy.py'
DET_FINETUNE = 'configs/fna/retinanet_fna_finetune_toy.py'
TOY_KERNELS, EXPANSIONS = (3, 5), (3, 6)


def search_config(config: str, **options):
    from nas_tasks.builder import load_config
    from nas_tasks.modules import register_all_modules
    register_all_modules()
    return load_config(str(REPO / config), options)


def random_architectures(cfg):
    from nas_tasks.builder import build_component
    from nas_tasks.diagnostics import RANDOM_ARCHITECTURES
    return build_component(RANDOM_ARCHITECTURES, dict(type='FNARandomArchitectures'),
                           'diagnose.random_architectures', default_args=dict(config=cfg, space=None, seed=1))


def recipe(cfg, train_config=SEG_FINETUNE, **settings):
    from nas_tasks.builder import build_component
    from nas_tasks.diagnostics import STANDALONE_RECIPES
    return build_component(STANDALONE_RECIPES,
                           dict(type='FNAParameterAdaptation', train_config=str(REPO / train_config),
                                **settings),
                           'diagnose.standalone', default_args=dict(config=cfg, space=None, seed=1))


# -- the random architectures -----------------------------------------------------------

@pytest.mark.parametrize('config', [FNA_SEGMENTATION, FNA_DETECTION])
def test_draws_are_archs_of_the_super_networks_space_and_follow_the_seed(config):
    from backbones.fna import FNA_SPACE
    from backbones.fna.block_strings import BlockString
    from backbones.fna.seed import seed_definition
    cfg = search_config(config)
    depths = cfg.model.backbone.depths
    draws = random_architectures(cfg)
    archs = [draws.draw(random.Random(seed)) for seed in range(40)]
    assert archs == [draws.draw(random.Random(seed)) for seed in range(40)]  # seeded
    assert len({repr(arch) for arch in archs}) == len(archs)  # and not constant
    seed_stages = seed_definition('mobilenetv2_100').arch_def
    for arch in archs:
        FNA_SPACE.validate(arch)
        stages = arch['arch_def']
        assert stages[0] == seed_stages[0] and len(stages) == len(seed_stages)
        for stage, depth in zip(stages[1:], depths):
            assert 1 <= len(stage) <= depth  # a stage's first layer is never a skip
            for block in map(BlockString.parse, stage):
                assert block.kernel_size in TOY_KERNELS and block.expansion in EXPANSIONS


def test_each_layer_draws_its_ops_uniformly():
    """Stage 0 of the toy segmentation super network has 2 layers: the first picks one
    of 4 MBConvs, the second one of them or skip (5 ops), so 1 in 5 stages keeps one block."""
    from backbones.fna.block_strings import BlockString
    draws = random_architectures(search_config(FNA_SEGMENTATION))
    rng = random.Random(0)
    n = 4000
    firsts, single = collections.Counter(), 0
    for _ in range(n):
        stage = draws.draw(rng)['arch_def'][1]
        block = BlockString.parse(stage[0])
        firsts[(block.kernel_size, block.expansion)] += 1
        single += len(stage) == 1
    assert set(firsts) == {(k, e) for k in TOY_KERNELS for e in EXPANSIONS}
    for count in firsts.values():
        assert abs(count / n - 1 / 4) < 0.03
    assert abs(single / n - 1 / 5) < 0.03


def test_the_seed_reference_is_the_seeds_own_network():
    from backbones.fna import build_adapted
    reference = random_architectures(search_config(FNA_SEGMENTATION)).references()
    assert set(reference) == {'seed'} and reference['seed']['seed'] == 'mobilenetv2_100'
    # The reference builds timm's mobilenetv2_100, tensor for tensor.
    adapted = build_adapted(reference['seed'], num_classes=0).state_dict()
    seed = timm.create_model('mobilenetv2_100', pretrained=False, num_classes=0).state_dict()
    assert list(adapted) == list(seed)
    assert all(adapted[key].shape == seed[key].shape for key in seed)


# -- the recipe ---------------------------------------------------------------------------

def test_the_recipe_adapts_the_seed_on_the_search_split_and_scores_as_the_search():
    cfg = search_config(FNA_DETECTION)
    # A search that trains on other images, through another pipeline, than the fine-tuning.
    cfg.train_dataloader.dataset.update(ann_file='annotations/instances_search.json',
                                        data_prefix=dict(img='search/'),
                                        pipeline=[dict(type='LoadImageFromFile')])
    standalone = recipe(cfg, DET_FINETUNE)
    assert standalone.score_name == 'coco/bbox_mAP'
    backbone = standalone.train_cfg.model.backbone
    # The seed remapped in, not the weights file the fine-tuning config names.
    assert 'weights' not in backbone and backbone.seed == {**cfg.model.backbone.seed, 'prefix': ''}
    # The search's training images through the fine-tuning pipeline, parsed once for
    # every candidate.
    from nas_tasks.built_datasets import PARSED_ONCE_TYPE
    dataset = standalone.train_cfg.train_dataloader.dataset
    assert dataset.type == PARSED_ONCE_TYPE
    images = dataset.dataset
    assert (images.ann_file, images.data_prefix.img) == ('annotations/instances_search.json', 'search/')
    finetune = search_config(DET_FINETUNE)
    assert images.pipeline == finetune.train_dataloader.dataset.pipeline


@pytest.mark.parametrize('setting, message', [
    (dict(config=FNA_SEGMENTATION, train_config='configs/detnas/retinanet_detnas_finetune_toy.py'),
     'must be an FNA fine-tuning config'),
    (dict(config='configs/auto_deeplab/auto_deeplab_toy.py'), 'needs an FNA search config'),
])
def test_a_wrong_config_is_one_line(setting, message):
    from nas_tasks.errors import NasError
    cfg = search_config(setting['config'])
    with pytest.raises(NasError) as error:
        recipe(cfg, setting.get('train_config', SEG_FINETUNE))
    assert_one_line(str(error.value), message)


@pytest.mark.slow  # three short mmseg trainings (about a minute on the loaded 2-core VM)
def test_a_tiny_adaptation_is_seeded_restarts_and_scores_the_searchs_miou(toy_cityscapes,
                                                                           fna_seed_weights, tmp_path):
    cfg = search_config(FNA_SEGMENTATION, data_root=f'{toy_cityscapes}/',
                        **{'model.backbone.seed.weights': str(fna_seed_weights)})
    standalone = recipe(cfg, keep_checkpoints=True, cfg_options=dict(
        train_cfg=dict(max_iters=4, val_interval=4), default_hooks=dict(checkpoint=dict(interval=2))))
    assert_seeded_restartable_miou_training(standalone, random_architectures(cfg), tmp_path)


@pytest.mark.parametrize('config', [FNA_SEGMENTATION, FNA_DETECTION, 'configs/fna/fna_deeplabv3_cityscapes.py',
                                    'configs/fna/fna_retinanet_coco.py'])
def test_the_fna_search_configs_diagnose_sections_build(config):
    cfg = search_config(config, **{'diagnose.num_random': 8})  # what --random 8 sets
    draws, settings = built_diagnose_section(cfg)
    draws.draw(random.Random(0))
    standalone = recipe(cfg, settings.standalone['train_config'])
    assert standalone.score_name == ('mIoU' if 'deeplab' in config else 'coco/bbox_mAP')


def test_settings_with_delete_keys_build_the_same_recipe_twice():
    """mmengine's merge consumes _delete_ keys: each recipe merges its own copy (a rerun or
    another rank builds the recipe again from the same settings)."""
    cfg = search_config(FNA_SEGMENTATION)
    options = dict(optim_wrapper=dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-3)))
    first, second = (recipe(cfg, cfg_options=options) for _ in range(2))
    for built in (first, second):
        assert built.train_cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=1e-3)


def test_the_diagnosis_reads_the_picks_search_score_under_the_tasks_score_name():
    """best_arch.json of an FNA segmentation search keeps its score as 'mIoU' (the task's
    score_name); the diagnosis once looked for search.score_name's default, 'score'."""
    from nas_tasks.diagnostics.diagnosis import search_score_name
    assert search_score_name(search_config(FNA_SEGMENTATION)) == 'mIoU'
    assert search_score_name(search_config('configs/detnas/detnas_retinanet_toy.py')) == 'bbox_mAP'
