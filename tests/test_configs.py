"""Every config under configs/ loads and its parts build, without data or weights.

Search configs build their search space, cost model, strategy and model (a
differentiable search its search network); train configs their model. No
data is read and no checkpoint is loaded: pretrained checkpoints are
stripped and found-architecture files that a search has not yet written are
stood in for by published architectures.
"""
import copy
import random
from pathlib import Path

import pytest
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope

from conftest import REPO
from nas_tasks.builder import build_component, load_config
from nas_tasks.config_checks import checkpoint_paths, dataset_classes, is_search_config
from nas_tasks.constraints import ResourceConstraint
from nas_tasks.data_paths import leaf_datasets
from nas_tasks.modules import register_all_modules
from nas_tasks.registry import COST_MODELS, DIFFERENTIABLE_SEARCHES, SPACES, STRATEGIES

CONFIGS = sorted(path.relative_to(REPO) for path in (REPO / 'configs').glob('**/*.py')
                 if '_base_' not in path.parts)
# A published architecture for each module whose ``arch`` names a search's output.
ARCH_STAND_INS = {
    'DetNASBackbone': 'detnas_300m_coco_retinanet',
    'SearchableNASFPN': 'nas_fpn',
    'AutoDeepLabBackbone': 'autodeeplab_s',
    'FNABackbone': 'fna_retinanet_mobilenetv2',
}
COCO_SEARCH_CONFIGS = ('configs/detnas/detnas_retinanet_coco.py',
                       'configs/detnas/detnas_faster_rcnn_coco.py',
                       'configs/nas_fpn/nas_fpn_retinanet_coco.py',
                       'configs/fna/fna_retinanet_coco.py')


@pytest.fixture(autouse=True, scope='module')
def registered():
    register_all_modules()


def test_configs_are_found():
    assert len(CONFIGS) > 10 and all(path.suffix == '.py' for path in CONFIGS)


@pytest.mark.parametrize('config', CONFIGS, ids=str)
def test_config_builds(config: Path):
    cfg = load_config(str(REPO / config))
    urls = [f'{key}={path}' for key, path in checkpoint_paths(cfg) if '://' in path]
    assert not urls, f'nothing is downloaded here: {urls}'
    if 'differentiable_search' in cfg:
        build_differentiable_search(cfg)
        return
    if is_search_config(cfg):
        build_search_parts(cfg)
    if 'model' in cfg:
        build_model(cfg)
    else:  # a search whose networks belong to its estimator
        build_gan_search_networks(cfg)


def build_search_parts(cfg) -> None:
    """Space, cost model and strategy as nas_tasks.search.build_search builds them; one ask."""
    seed = int(cfg.get('search', {}).get('seed', 0))
    space = build_component(SPACES, cfg.search_space, 'search_space')
    cost_model_cfg = cfg.estimator.get('cost_model')
    costs = None
    if cost_model_cfg is not None:
        cost_model = build_component(COST_MODELS, cost_model_cfg, 'estimator.cost_model')
        costs = cost_model.costs
        assert {'flops', 'params'} <= set(costs(space.sample(random.Random(seed))))
    limits = cfg.get('search', {}).get('constraints')
    # Without a cost model the estimator measures costs on the built model,
    # which needs data; such configs must not limit costs for this test.
    assert costs is not None or not limits
    constraint = ResourceConstraint(costs, limits)
    strategy = build_component(STRATEGIES, cfg.strategy, 'strategy',
                               default_args=dict(space=space, seed=seed, constraint=constraint))
    # A strategy may propose a whole population at its first ask.
    archs = strategy.ask(1)
    assert archs
    for arch in archs:
        space.validate(arch)


def build_differentiable_search(cfg) -> None:
    """The search task (its settings are checked) and its search network."""
    from backbones.auto_deeplab.search_network import AutoDeepLabSearchNet

    search = build_component(DIFFERENTIABLE_SEARCHES, cfg.differentiable_search,
                             'differentiable_search', default_args=dict(config=cfg))
    if type(search).__name__ in ('FNADetectionSearch', 'FNASegmentationSearch'):
        build_model(cfg, scope=search.default_scope)  # the detector or segmentor with the super network
        return
    assert type(search).__name__ == 'AutoDeepLabSearch', 'a new differentiable search: build it here'
    # The search reads its data with mmseg (the scope that names the dataset).
    known = dataset_classes(cfg.train_dataloader.dataset, 'train_dataloader.dataset', 'mmseg')
    network = AutoDeepLabSearchNet(num_classes=known.count, seed=search.seed, **search.network_cfg)
    assert sum(p.numel() for p in network.parameters()) > 0


def build_gan_search_networks(cfg) -> None:
    """The shared generator and discriminator of an AutoGAN search, as its estimator builds them."""
    from gan.autogan.estimator import gan_settings
    from gan.autogan.shared_training import SharedGANTrainer

    assert cfg.estimator.type == 'AutoGANEstimator', 'a new search without a model: build it here'
    trainer = SharedGANTrainer(gan_settings(cfg.estimator.get('gan'), seed=0))
    assert sum(p.numel() for p in trainer.generator.parameters()) > 0


def build_model(cfg, scope: str | None = None) -> None:
    # The scope a Runner builds the config in: its default_scope, else mmengine's own.
    scope = scope or cfg.get('default_scope', 'mmengine')
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    # ConfigDict: mmdet's detectors read train_cfg.rpn and the like as attributes.
    model_cfg = ConfigDict(without_weights(copy.deepcopy(cfg.model.to_dict())))
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(model_cfg)
    assert sum(p.numel() for p in model.parameters()) > 0


def without_weights(node):
    """``node`` with pretrained checkpoints dropped and unwritten arch files stood in for."""
    if isinstance(node, list):
        return [without_weights(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: without_weights(value) for key, value in node.items()
            if not (key == 'init_cfg' and _loads_checkpoint(value)) and key != 'pretrained'}
    arch = node.get('arch')
    if isinstance(arch, str) and arch.endswith('.json') and not Path(arch).is_file():
        node['arch'] = ARCH_STAND_INS[node['type']]
    return node


def _loads_checkpoint(init_cfg) -> bool:
    init_cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg]
    return any(isinstance(item, dict) and item.get('type') == 'Pretrained' for item in init_cfgs)


@pytest.mark.parametrize('config', COCO_SEARCH_CONFIGS)
def test_coco_searches_rank_on_held_out_train2017_never_val2017(config):
    cfg = load_config(str(REPO / config))
    train = [dataset for _, dataset in leaf_datasets(cfg.train_dataloader.dataset)]
    ranking = [dataset for _, dataset in leaf_datasets(cfg.val_dataloader.dataset)]
    assert [d.ann_file for d in train] == ['annotations/instances_train2017_search_train.json']
    assert [d.ann_file for d in ranking] == ['annotations/instances_train2017_search_heldout.json']
    assert all(d.data_prefix.img == 'train2017/' for d in train + ranking)
    assert cfg.val_evaluator.ann_file == 'data/coco/annotations/instances_train2017_search_heldout.json'
    assert 'val2017' not in cfg.pretty_text


@pytest.mark.parametrize('config', ['configs/detnas/retinanet_detnas_finetune_coco.py',
                                    'configs/detnas/faster_rcnn_detnas_finetune_coco.py',
                                    'configs/nas_fpn/retinanet_nas_fpn_finetune_coco.py',
                                    'configs/fna/retinanet_fna_finetune_coco.py'])
def test_coco_fine_tuning_reports_on_val2017(config):
    cfg = load_config(str(REPO / config))
    assert cfg.train_dataloader.dataset.ann_file == 'annotations/instances_train2017.json'
    assert cfg.test_dataloader.dataset.ann_file == 'annotations/instances_val2017.json'
    assert cfg.test_evaluator.ann_file.endswith('annotations/instances_val2017.json')


def test_detnas_search_reads_what_the_pretraining_writes():
    pretraining = load_config(str(REPO / 'configs/detnas/detnas_supernet_imagenet.py'))
    exported = [hook.filename for hook in pretraining.custom_hooks
                if hook.type == 'ExportWeightsHook']
    written = f'work_dirs/detnas_supernet_imagenet/{exported[0]}'
    for config in COCO_SEARCH_CONFIGS[:2]:
        init_cfg = load_config(str(REPO / config)).model.backbone.init_cfg
        assert (init_cfg.checkpoint, init_cfg.prefix) == (written, 'backbone.')
