"""BN recalibration of a whole detector: backbone (even with norm_eval and
frozen stages), neck and head BNs are all re-estimated, and modes are restored."""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from nas_tasks.errors import NasError
from nas_tasks.estimators.bn_recalibration import recalibrate_batch_norm

IMAGE_SIZE = 64


def retinanet_cfg(norm_eval: bool, frozen_stages: int) -> dict:
    """A tiny RetinaNet: a narrow ResNet-18 and RetinaSepBNHead, whose convs have BN per level."""
    import mmdet
    base = Path(mmdet.__file__).parent / '.mim/configs/_base_/models/retinanet_r50_fpn.py'
    cfg = Config.fromfile(base).model
    cfg.backbone.update(depth=18, base_channels=8, norm_eval=norm_eval, frozen_stages=frozen_stages,
                        init_cfg=None)
    cfg.neck.update(in_channels=[8, 16, 32, 64], out_channels=16)
    cfg.bbox_head.update(type='RetinaSepBNHead', num_classes=2, num_ins=5, in_channels=16,
                         feat_channels=16, stacked_convs=2, norm_cfg=dict(type='BN'))
    return cfg.to_dict()


def build_detector(norm_eval: bool, frozen_stages: int) -> nn.Module:
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(0)
    return MODELS.build(retinanet_cfg(norm_eval, frozen_stages))


def batches(count: int = 3, batch_size: int = 2) -> list[dict]:
    """Raw dataloader batches (uint8 images and data samples), different in content and scale."""
    from mmdet.structures import DetDataSample
    generator = torch.Generator().manual_seed(1)
    result = []
    for index in range(count):
        high = 80 * (index + 1)
        images = [torch.randint(0, high, (3, IMAGE_SIZE, IMAGE_SIZE), generator=generator,
                                dtype=torch.uint8) for _ in range(batch_size)]
        samples = [DetDataSample(metainfo=dict(img_shape=(IMAGE_SIZE, IMAGE_SIZE),
                                               ori_shape=(IMAGE_SIZE, IMAGE_SIZE),
                                               scale_factor=(1.0, 1.0)))
                   for _ in range(batch_size)]
        result.append(dict(inputs=images, data_samples=samples))
    return result


def batch_norms(model: nn.Module) -> dict[str, _BatchNorm]:
    return {name: m for name, m in model.named_modules() if isinstance(m, _BatchNorm)}


def reference_statistics(detector: nn.Module, data: list[dict]) -> dict[str, tuple]:
    """The statistics from plain train mode: the same weights in a detector without
    norm_eval or frozen stages, momentum None, reset, the same batches forward."""
    reference = build_detector(norm_eval=False, frozen_stages=-1)
    reference.load_state_dict(detector.state_dict())
    reference.train()
    for norm in batch_norms(reference).values():
        assert norm.training
        norm.reset_running_stats()
        norm.momentum = None
    with torch.no_grad():
        for batch in data:
            reference(**reference.data_preprocessor(copy.deepcopy(batch), True), mode='tensor')
    return {name: (norm.running_mean.clone(), norm.running_var.clone())
            for name, norm in batch_norms(reference).items()}


def test_every_batch_norm_of_the_detector_is_recalibrated_and_modes_restored():
    from detection.one_shot import recalibrate_detector_batch_norm
    detector = build_detector(norm_eval=True, frozen_stages=1)
    detector.train()  # norm_eval and frozen_stages now hold the backbone's BNs in eval mode
    norms = batch_norms(detector)
    assert not any(norm.training for name, norm in norms.items() if name.startswith('backbone.'))
    head_norms = [name for name in norms if name.startswith('bbox_head.')]
    assert len(head_norms) == 5 * 2 * 2  # levels x (cls, reg) x stacked convs
    modes = {name: module.training for name, module in detector.named_modules()}
    momenta = {name: norm.momentum for name, norm in norms.items()}
    data = batches()
    expected = reference_statistics(detector, data)

    used = recalibrate_detector_batch_norm(detector, copy.deepcopy(data))

    assert used == len(data)
    for name, norm in norms.items():
        mean, var = expected[name]
        # Changed from the reset values (0 and 1) ...
        assert not torch.allclose(norm.running_mean, torch.zeros_like(mean)), name
        assert not torch.allclose(norm.running_var, torch.ones_like(var)), name
        # ... to the statistics of the data.
        torch.testing.assert_close(norm.running_mean, mean, rtol=1e-4, atol=1e-5, msg=name)
        torch.testing.assert_close(norm.running_var, var, rtol=1e-4, atol=1e-5, msg=name)
        assert norm.momentum == momenta[name]
    assert {name: module.training for name, module in detector.named_modules()} == modes


def test_an_eval_mode_model_stays_in_eval_mode():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5)).eval()
    recalibrate_batch_norm(model, [torch.randn(2, 3, 8, 8)], forward=model)
    assert not any(module.training for module in model.modules())
    assert not torch.equal(model[1].running_mean, torch.zeros(4))


def test_a_frozen_batch_norm_is_refused_in_one_line():
    from torchvision.ops import FrozenBatchNorm2d
    model = nn.Sequential(nn.Conv2d(3, 4, 3), FrozenBatchNorm2d(4))
    with pytest.raises(NasError, match=r"cannot recalibrate the BN statistics of 1 \(FrozenBatchNorm2d\)"):
        recalibrate_batch_norm(model, [torch.randn(2, 3, 8, 8)], forward=model)


def test_no_batches_is_refused():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    with pytest.raises(NasError, match='BN recalibration got no batches'):
        recalibrate_batch_norm(model, [], forward=model)


# -- a DetNAS supernet with SyncBN (the official search's norm) ---------------------------------

def test_a_sync_bn_supernet_recalibrates_per_process_like_the_same_supernet_with_bn():
    """Inside a (one-rank gloo) process group, where torch's SyncBatchNorm in train mode
    would all-reduce (and on a CPU refuses to run), a DetNAS supernet built with
    norm_cfg=SyncBN is recalibrated on this process's batches alone: its statistics and
    its eval-mode outputs equal those of the same supernet built with BN."""
    import random

    import torch.distributed as torch_dist
    from backbones.detnas import CHOICE_NAMES, DetNASSuperNet, layer_keys
    from conftest import free_port
    rng = random.Random(3)
    arch = {key: rng.choice(CHOICE_NAMES) for key in layer_keys('small')}
    networks = {}
    for norm in ('BN', 'SyncBN'):
        torch.manual_seed(0)
        networks[norm] = DetNASSuperNet(norm_cfg=dict(type=norm), out_indices=(2, 3))
        networks[norm].set_arch(arch)
    assert any(isinstance(m, nn.SyncBatchNorm) for m in networks['SyncBN'].modules())
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in networks['BN'].modules())
    generator = torch.Generator().manual_seed(1)
    data = [torch.rand(2, 3, 64, 64, generator=generator) * (index + 1) for index in range(3)]
    probe = torch.rand(2, 3, 64, 64, generator=generator)

    torch_dist.init_process_group('gloo', rank=0, world_size=1,
                                  init_method=f'tcp://127.0.0.1:{free_port()}')
    try:
        outputs = {}
        for norm, network in networks.items():
            assert recalibrate_batch_norm(network, data, forward=network) == len(data)
            network.eval()
            with torch.no_grad():
                outputs[norm] = network(probe)
    finally:
        torch_dist.destroy_process_group()

    bn_norms, sync_norms = batch_norms(networks['BN']), batch_norms(networks['SyncBN'])
    assert bn_norms.keys() == sync_norms.keys()
    recalibrated = [name for name, norm in bn_norms.items() if norm.num_batches_tracked > 0]
    assert len(recalibrated) > 20  # the chosen path's BNs (the other choices see no data)
    means = torch.cat([bn_norms[name].running_mean for name in recalibrated])
    assert means.std() > 0.01  # statistics that vary, so that equality says something
    for name in bn_norms:
        torch.testing.assert_close(sync_norms[name].running_mean, bn_norms[name].running_mean,
                                   msg=name)
        torch.testing.assert_close(sync_norms[name].running_var, bn_norms[name].running_var,
                                   msg=name)
        assert 'forward' not in vars(sync_norms[name])  # the class's forward is back
    assert outputs['BN'][-1].std() > 0
    for bn_output, sync_output in zip(outputs['BN'], outputs['SyncBN']):
        torch.testing.assert_close(sync_output, bn_output)


def test_a_sync_bn_supernet_under_a_cpu_process_group_is_refused_in_one_line_before_training():
    """torchrun on CPUs (gloo): SyncBN's first training forward would raise deep inside the
    Runner; the estimator says so first. Without a group (one process) it trains as BN."""
    import torch.distributed as torch_dist
    from backbones.detnas import DetNASSuperNet
    from conftest import assert_one_line, free_port
    from detection.one_shot import check_sync_batch_norm_can_train
    sync_bn = DetNASSuperNet(norm_cfg=dict(type='SyncBN'), out_indices=(3,))
    plain_bn = DetNASSuperNet(out_indices=(3,))
    check_sync_batch_norm_can_train(sync_bn)  # one process: fine
    torch_dist.init_process_group('gloo', rank=0, world_size=1,
                                  init_method=f'tcp://127.0.0.1:{free_port()}')
    try:
        check_sync_batch_norm_can_train(plain_bn)
        with pytest.raises(NasError) as error:
            check_sync_batch_norm_can_train(sync_bn)
        with pytest.raises(ValueError, match='SyncBatchNorm expected input tensor to be on GPU'):
            sync_bn.train()(torch.rand(2, 3, 32, 32))  # what the check stands in front of
    finally:
        torch_dist.destroy_process_group()
    assert_one_line(str(error.value), 'SyncBN', 'CUDA only', 'model.backbone.norm_cfg.type=BN')
