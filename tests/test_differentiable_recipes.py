"""The differentiable trainer expresses the official recipes: mmengine param schedulers
for the weight learning rate, gradient accumulation to a total batch, the world size
recorded in its checkpoint; and the FNA toy search runs with the official step
schedule at FNA's accumulated total batch of 8."""
import copy

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.optim.scheduler import _ParamScheduler
from mmengine.registry import PARAM_SCHEDULERS
from mmengine.runner import Runner
from torch import nn

from detection.proxy import released_mmengine_instances
from nas_tasks.differentiable.schedules import check_retired_settings
from nas_tasks.errors import NasError
from nas_tasks.world_size import WORLD_SIZE_KEY, allow_world_size_change
from test_differentiable import CostModel, NoisyData, TinySearchModel, make_trainer

def assert_one_line_error(pattern, action):
    with pytest.raises(NasError, match=pattern) as error:
        action()
    assert '\n' not in str(error.value)


# -- learning-rate schedules -------------------------------------------------------------------

EPOCHS, ITERS = 4, 3
SCHEDULES = {
    # FNA's official shape: a linear warm-up by iteration, then steps by epoch.
    'warm-up and steps': [
        dict(type='LinearLR', start_factor=0.25, by_epoch=False, begin=0, end=4),
        dict(type='MultiStepLR', by_epoch=True, milestones=[2, 3], gamma=0.5)],
    # An epoch-based cosine converted to iterations, and a poly decay by iteration.
    'cosine by iteration': dict(type='CosineAnnealingLR', eta_min=0.01, by_epoch=True,
                                convert_to_iter_based=True),
    'poly': dict(type='PolyLR', eta_min=0.001, power=0.9, by_epoch=False),
    'cosine by epoch': dict(type='CosineAnnealingLR', eta_min=0.01, by_epoch=True),
}


class _LrRecorder(Hook):
    def __init__(self):
        self.lrs = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.lrs.append(runner.optim_wrapper.get_lr()['lr'][0])


class _Line(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, inputs, mode='loss'):
        return dict(loss=self.linear(torch.stack(inputs)).square().mean())


def mmengine_runner_lrs(schedule, tmp_path, lr):
    """The learning rate of every iteration of mmengine's own Runner (ITERS a epoch)."""
    recorder = _LrRecorder()
    # The Runner's DefaultScope ('mmengine') would stay the current one for the
    # tests that follow in this process, and mmdet's registry would then look in mmengine's.
    with released_mmengine_instances():
        _train_runner(recorder, schedule, tmp_path, lr)
    return recorder.lrs


def _train_runner(recorder, schedule, tmp_path, lr):
    runner = Runner(
        model=_Line(), work_dir=str(tmp_path), default_scope='mmengine',
        train_dataloader=dict(dataset=[dict(inputs=torch.ones(1))] * ITERS, batch_size=1,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='pseudo_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=EPOCHS),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=lr)),
        param_scheduler=copy.deepcopy(schedule), custom_hooks=[recorder],
        default_hooks=dict(checkpoint=None, logger=None), log_level='WARNING')
    runner.train()


def trainer_lrs(trainer, resume=False):
    """Run ``trainer`` (or resume it), recording the weight learning rate of every iteration."""
    lrs, step = [], trainer.train_step

    def recording_step(*args, **kwargs):
        lrs.append(trainer.weight_optimizer.param_groups[0]['lr'])
        return step(*args, **kwargs)
    trainer.train_step = recording_step
    trainer.fit(resume=resume)
    return lrs


@pytest.mark.parametrize('name', SCHEDULES)
def test_the_learning_rates_are_those_of_mmengine_s_runner_for_the_same_config(tmp_path, name):
    """Per iteration, as mmengine's Runner with ParamSchedulerHook gives them; with
    accumulation an iteration is an accumulated step (2 micro-batches here)."""
    lr = 0.1
    expected = mmengine_runner_lrs(SCHEDULES[name], tmp_path / 'runner', lr)
    assert len(expected) == EPOCHS * ITERS and len(set(expected)) > 2  # the schedule varies
    trainer = make_trainer(tmp_path / 'trainer', epochs=EPOCHS, batch_size=1,
                           accumulative_counts=2, weight_data=NoisyData(2 * ITERS, seed=1),
                           param_scheduler=SCHEDULES[name],
                           weight_optimizer=dict(type='SGD', lr=lr))
    assert trainer.iters_per_epoch == ITERS
    assert trainer_lrs(trainer) == pytest.approx(expected, rel=1e-12)
    assert [record['lr'] for record in trainer.history] == pytest.approx(
        expected[ITERS - 1::ITERS], rel=1e-12)  # an epoch's record: its last step's lr


def test_the_schedule_resumes_where_it_stopped(tmp_path):
    settings = dict(epochs=EPOCHS, batch_size=2, param_scheduler=SCHEDULES['warm-up and steps'],
                    weight_optimizer=dict(type='SGD', lr=0.1))
    whole = make_trainer(tmp_path / 'whole', **settings)
    whole_lrs = trainer_lrs(whole)
    assert len(set(whole_lrs)) > 2
    first = make_trainer(tmp_path / 'cut', **dict(settings, epochs=2))
    first_lrs = trainer_lrs(first)
    resumed = make_trainer(tmp_path / 'cut', **settings)
    assert first_lrs + trainer_lrs(resumed, resume=True) == whole_lrs
    assert [type(s).__name__ for s in resumed.schedules.schedulers] == ['LinearLR', 'MultiStepLR']


def test_bad_and_retired_schedule_settings_are_one_line_errors(tmp_path):
    assert_one_line_error(r"unknown type|is not in the .*registry|bad param_scheduler",
                          lambda: make_trainer(tmp_path, param_scheduler=dict(type='Cosine')))
    assert_one_line_error("write param_scheduler=dict\\(type='CosineAnnealingLR', "
                                    'eta_min=M, by_epoch=True\\)',
                          lambda: check_retired_settings(
                              dict(weight_lr_schedule=dict(type='cosine', min_lr=0.001))))
    make_trainer(tmp_path / 'one', param_scheduler=SCHEDULES['poly']).fit()
    assert_one_line_error(r'written with 1 param scheduler\(s\), this run has 2 '
                                    r'\(LinearLR, MultiStepLR\)',
                          lambda: make_trainer(tmp_path / 'one',
                                               param_scheduler=SCHEDULES['warm-up and steps']
                                               ).fit(resume=True))


# -- gradient accumulation ---------------------------------------------------------------------

ACCUMULATION_CASES = {
    'single path, FNA relaxed arch steps with a cost': (
        CostModel, dict(single_path=True, arch_paths='all', arch_start_epoch=1)),
    'relaxed, first order': (TinySearchModel, dict(single_path=False, arch_start_epoch=0)),
}


@pytest.mark.parametrize('case', ACCUMULATION_CASES)
def test_two_accumulated_micro_batches_of_2_step_as_one_batch_of_4(tmp_path, case):
    """Weights and architecture: each loss divided by 2, one step of each optimizer
    (momentum, weight decay, clipping and the schedule see one step), the same single path."""
    model, settings = ACCUMULATION_CASES[case]
    common = dict(epochs=2, grad_clip=1.0, param_scheduler=SCHEDULES['warm-up and steps'],
                  weight_data=NoisyData(8, seed=1), arch_data=NoisyData(8, seed=2), **settings)
    accumulated = make_trainer(tmp_path / 'accumulated', model=model(), batch_size=2,
                               accumulative_counts=2, **common)
    accumulated.fit()
    whole = make_trainer(tmp_path / 'whole', model=model(), batch_size=4, **common)
    whole.fit()
    assert accumulated.global_step == whole.global_step == 4
    initial = model().state_dict()
    trained = [key for key, value in whole.model.state_dict().items()
               if not torch.allclose(value, initial[key])]
    # alpha and the head trained (in single-path mode an op never drawn keeps its weights)
    assert {'arch_params.logits.alpha', 'head.weight'} <= set(trained)
    assert len(trained) > len(initial) // 2, trained
    for key, value in whole.model.state_dict().items():
        assert torch.allclose(accumulated.model.state_dict()[key], value, rtol=1e-10,
                              atol=1e-12), key
    for mine, theirs in zip(accumulated.history, whole.history):
        assert mine['weight_loss'] == pytest.approx(theirs['weight_loss'], rel=1e-10)
        assert mine['lr'] == theirs['lr']
        if theirs['arch_loss'] is not None:
            assert mine['arch_loss'] == pytest.approx(theirs['arch_loss'], rel=1e-10)


def test_accumulation_is_refused_where_it_cannot_step(tmp_path):
    assert_one_line_error('fewer than accumulative_counts 5',
                          lambda: make_trainer(tmp_path, accumulative_counts=5, batch_size=2))
    assert_one_line_error('needs first-order architecture steps',
                          lambda: make_trainer(tmp_path, accumulative_counts=2,
                                               second_order=True))


# -- world size ----------------------------------------------------------------------------------

def test_a_checkpoint_of_another_world_size_is_refused_unless_allowed(tmp_path):
    make_trainer(tmp_path, epochs=1).fit()
    path = tmp_path / 'search_state.pth'
    state = torch.load(path, weights_only=True)
    assert state[WORLD_SIZE_KEY] == 1
    state[WORLD_SIZE_KEY] = 2
    torch.save(state, path)
    assert_one_line_error(r'holds the search network trained on 2 process\(es\), but '
                                    r'this run has 1.*--allow-world-size-change',
                          lambda: make_trainer(tmp_path, epochs=2).fit(resume=True))
    allow_world_size_change(True)
    try:
        resumed = make_trainer(tmp_path, epochs=2)
        resumed.fit(resume=True)
    finally:
        allow_world_size_change(False)
    assert resumed.epoch == 2 and torch.load(path, weights_only=True)[WORLD_SIZE_KEY] == 1


# -- FNA's official recipe on the toy search -------------------------------------------------------

@pytest.mark.xdist_group('fna')
def test_fna_toy_search_runs_the_official_step_schedule_at_a_total_batch_of_8(
        fna_detection_search):
    """The session's FNA detection search (configs/fna/fna_retinanet_toy.py: batch 2 x
    accumulative_counts 4 = FNA's 8; warm-up by iteration, steps by epoch) took one
    step an epoch on its 8-image weight half, at mmengine's learning rates."""
    from mmengine.config import Config
    from search_runs import FNA_DETECTION

    state = torch.load(fna_detection_search.work_dir / 'search_state.pth', weights_only=True)
    settings = state['settings']
    history = state['history']
    assert settings['accumulative_counts'] * 2 == 8  # batch 2 a micro-batch (fna_options)
    assert [record['step'] for record in history] == [1, 2, 3]
    trainer = Config.fromfile(FNA_DETECTION).differentiable_search.trainer
    schedule = trainer.param_scheduler
    assert [s['type'] for s in schedule] == ['LinearLR', 'MultiStepLR']
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=trainer.weight_optimizer.lr)
    schedulers: list[_ParamScheduler] = [
        PARAM_SCHEDULERS.build(cfg, default_args=dict(optimizer=optimizer)) for cfg in schedule]
    expected = []
    for _ in history:  # one iteration an epoch: its lr, then the hook's steps
        expected.append(optimizer.param_groups[0]['lr'])
        for scheduler in schedulers:
            scheduler.step()
    assert len(set(expected)) == 3  # the warm-up's lrs
    assert [record['lr'] for record in history] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize('config', ['configs/fna/fna_retinanet_toy.py',
                                    'configs/fna/fna_retinanet_coco.py',
                                    'configs/fna/fna_deeplabv3_toy.py',
                                    'configs/fna/fna_deeplabv3_cityscapes.py'])
def test_fna_searches_clip_both_gradients_at_35_as_the_official_search(config, tmp_path):
    """The official search clips the weight and the architecture gradients to norm 35
    (JaminFong/FNA configs/fna_retinanet_fpn_search.py, both optimizer_configs); a
    trainer built with the config's settings clips its architecture steps so."""
    from mmengine.config import Config

    trainer_cfg = Config.fromfile(config).differentiable_search.trainer
    assert trainer_cfg.grad_clip == 35.0 and trainer_cfg.arch_grad_clip == 35.0
    trainer = make_trainer(tmp_path, model=CostModel(), grad_clip=trainer_cfg.grad_clip,
                           arch_grad_clip=trainer_cfg.arch_grad_clip)
    assert trainer.architect.grad_clip == 35.0


# -- the architecture step's frozen weights ------------------------------------------------------

@pytest.mark.parametrize('with_cp', [False, True])
def test_frozen_weights_leave_the_architecture_gradients_of_auto_deeplab_whole(with_cp):
    """Auto-DeepLab's recomputed (checkpointed) cells too: with the weights frozen, as in a
    first-order architecture step, alpha and beta get the gradients of a plain backward
    and no weight gets one."""
    from nas_tasks.differentiable.architect import frozen
    from test_auto_deeplab_model import randomize_arch_logits, tiny_search_net

    reference = tiny_search_net(block_multiplier=3)
    randomize_arch_logits(reference)
    net = tiny_search_net(block_multiplier=3, with_cp=with_cp)
    net.load_state_dict(reference.state_dict())
    images = torch.randn(2, 3, 32, 32)
    reference(images).square().mean().backward()
    arch_ids = {id(p) for p in net.arch_parameters()}
    weights = [p for p in net.parameters() if id(p) not in arch_ids]
    with frozen(weights):
        net(images).square().mean().backward()
    assert all(weight.grad is None for weight in weights)
    assert all(weight.requires_grad for weight in weights)
    for name in ('alpha', 'beta'):
        expected = reference.arch_params.logits[name].grad
        assert expected.abs().max() > 0
        torch.testing.assert_close(net.arch_params.logits[name].grad, expected,
                                   rtol=1e-5, atol=1e-7)
