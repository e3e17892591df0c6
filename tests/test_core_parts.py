"""Core helpers: BN recalibration, component building, data_root, rank splitting, safe checkpoints."""
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.registry import Registry
from torch import nn

from nas_tasks.builder import apply_data_root, build_component
from nas_tasks.checkpoint import WeightsOnlyCheckpointHook, safe_torch_load
from nas_tasks.io import atomic_torch_save
from nas_tasks.dist import evaluate_split
from nas_tasks.errors import NasError
from nas_tasks.estimators.bn_recalibration import recalibrate_batch_norm


def test_bn_recalibration_estimates_exact_average_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4, momentum=0.1))
    model[1].running_mean.fill_(5.0)
    model.eval()
    batches = [torch.randn(2, 3, 4, 4) * (i + 1) + i for i in range(3)]
    with torch.no_grad():
        features = [model[0](b) for b in batches]
    count = recalibrate_batch_norm(model, batches, forward=model)
    assert count == 3
    expected_mean = torch.stack([f.mean(dim=(0, 2, 3)) for f in features]).mean(0)
    expected_var = torch.stack([f.var(dim=(0, 2, 3), unbiased=True) for f in features]).mean(0)
    assert torch.allclose(model[1].running_mean, expected_mean, atol=1e-5)
    assert torch.allclose(model[1].running_var, expected_var, atol=1e-4)
    assert model[1].momentum == 0.1 and not model.training
    assert all(p.grad is None for p in model.parameters())


class Widget:
    def __init__(self, size: int, space=None, colour: str = 'red'):
        self.size, self.space, self.colour = size, space, colour


def test_build_component_reports_unknown_types_and_settings():
    registry = Registry('widget')
    registry.register_module(module=Widget)
    built = build_component(registry, dict(type='Widget', size=3), 'widget',
                            default_args=dict(space='S', unused_default=1))
    assert (built.size, built.space, built.colour) == (3, 'S', 'red')
    with pytest.raises(NasError, match="unknown widget type 'Wodget'; registered types: Widget"):
        build_component(registry, dict(type='Wodget'), 'widget')
    with pytest.raises(NasError, match="widget 'Widget' has no setting 'sise'; its settings are: "
                                       'colour, size'):
        build_component(registry, dict(type='Widget', sise=3), 'widget', default_args=dict(space=1))


def test_apply_data_root_moves_every_split_and_evaluator():
    cfg = Config(dict(
        data_root='data/toy/',
        train_dataloader=dict(dataset=dict(data_root='data/toy/', ann_file='a/train.json')),
        val_dataloader=dict(dataset=dict(data_root='data/toy/', ann_file='a/val.json')),
        val_evaluator=dict(type='CocoMetric', ann_file='data/toy/a/val.json')))
    apply_data_root(cfg, '/data/coco')
    assert cfg.train_dataloader.dataset.data_root == '/data/coco/'
    assert cfg.val_dataloader.dataset.data_root == '/data/coco/'
    assert cfg.val_evaluator.ann_file == '/data/coco/a/val.json'


def test_evaluate_split_in_one_process_keeps_order():
    assert evaluate_split([3, 1, 2], lambda items: [i * 10 for i in items]) == [30, 10, 20]
    assert evaluate_split([], lambda items: 1 / 0) == []


def test_runner_checkpoints_become_weights_only_loadable(tmp_path):
    buffer = HistoryBuffer()
    buffer.update(1.5)
    checkpoint = dict(
        state_dict={'w': torch.ones(2)},
        meta=dict(iter=3, eta=np.float64(2.5)),
        message_hub=dict(log_scalars={'loss': buffer}, runtime_info={'eta': np.float64(1.0),
                                                                     'iter': 3},
                         resumed_keys={}))
    raw = tmp_path / 'raw.pth'
    torch.save(checkpoint, raw)
    with pytest.raises(NasError, match='cannot read checkpoint'):
        safe_torch_load(raw)
    WeightsOnlyCheckpointHook().before_save_checkpoint(None, checkpoint)
    atomic_torch_save(checkpoint, tmp_path / 'safe.pth')
    loaded = safe_torch_load(tmp_path / 'safe.pth')
    assert loaded['meta'] == {'iter': 3, 'eta': 2.5}
    assert loaded['message_hub']['runtime_info'] == {'eta': 1.0, 'iter': 3}
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['raw.pth', 'safe.pth']
