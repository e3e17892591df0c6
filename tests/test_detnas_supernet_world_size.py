"""The supernet's world size: its Runner checkpoints record it, and resuming its
training on another one is refused in one line unless the user allows it.

The hook is checked with a real mmengine Runner on a tiny model (a resume in this
process; another world size is written into the checkpoint's meta, as a run on two
processes would have); that the DetNAS supernet's checkpoints carry it is checked on
the shared toy search (tests/test_detnas_search_e2e.py).
"""
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

import pytest
from conftest import assert_one_line
from nas_tasks.errors import NasError
from nas_tasks.checkpoint import WeightsOnlyCheckpointHook
from nas_tasks.world_size import WORLD_SIZE_KEY, allow_world_size_change
from nas_tasks.world_size_hook import WorldSizeHook


class TinyRegressor(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        prediction = self.linear(torch.stack(inputs))
        if mode == 'loss':
            return dict(loss=prediction.pow(2).mean())
        return prediction


def train(work_dir, iterations: int, resume: bool = False, load_from=None):
    """A Runner that trains TinyRegressor for ``iterations`` and checkpoints every 2
    (built directly: a Runner built from a config cannot hold the model object)."""
    torch.manual_seed(0)
    runner = Runner(
        model=TinyRegressor(), work_dir=str(work_dir), resume=resume,
        load_from=None if load_from is None else str(load_from),
        train_dataloader=dict(dataset=[dict(inputs=torch.randn(2)) for _ in range(8)],
                              sampler=dict(type='DefaultSampler', shuffle=False), batch_size=2,
                              collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=iterations),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)),
        custom_hooks=[WeightsOnlyCheckpointHook(), WorldSizeHook('the supernet')],
        randomness=dict(seed=0))
    runner.train()
    return runner


def checkpoint_meta(path):
    return torch.load(path, weights_only=True)['meta']


def set_recorded_world_size(path, world_size: int) -> None:
    checkpoint = torch.load(path, weights_only=True)
    checkpoint['meta'][WORLD_SIZE_KEY] = world_size
    torch.save(checkpoint, path)


@pytest.fixture
def trained_on_two_processes(tmp_path):
    """A work dir whose last checkpoint (iteration 2) says it was trained on 2 processes."""
    train(tmp_path, iterations=2, resume=False)
    assert checkpoint_meta(tmp_path / 'iter_2.pth')[WORLD_SIZE_KEY] == 1
    set_recorded_world_size(tmp_path / 'iter_2.pth', 2)
    return tmp_path


def test_resuming_on_another_world_size_is_refused_in_one_line(trained_on_two_processes):
    with pytest.raises(NasError) as error:
        train(trained_on_two_processes, iterations=4, resume=True)
    assert_one_line(str(error.value), 'the supernet trained on 2 process(es)', 'this run has 1',
                    '--allow-world-size-change')
    assert not (trained_on_two_processes / 'iter_4.pth').exists()


def test_resuming_on_another_world_size_goes_on_when_allowed(trained_on_two_processes):
    allow_world_size_change(True)
    try:
        runner = train(trained_on_two_processes, iterations=4, resume=True)
    finally:
        allow_world_size_change(False)
    assert runner.iter == 4
    # From now on the state is trained on this world size, and says so.
    assert checkpoint_meta(trained_on_two_processes / 'iter_4.pth')[WORLD_SIZE_KEY] == 1


def test_initial_weights_from_another_world_size_are_not_a_resume(trained_on_two_processes,
                                                                  tmp_path_factory):
    """load_from (e.g. another run's supernet) starts a new training at any world size."""
    work_dir = tmp_path_factory.mktemp('load_from')
    runner = train(work_dir, iterations=1, load_from=trained_on_two_processes / 'iter_2.pth')
    assert runner.iter == 1
