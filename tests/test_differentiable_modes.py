"""The differentiable trainer's options: FNA's arch_paths='all', the architecture cost term,
mixed precision (bfloat16 on the CPU, float16 with loss scaling), SyncBatchNorm, and the
mmengine dataloader template its halves are loaded with."""
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from nas_tasks.differentiable import precision as precision_module
from nas_tasks.differentiable.precision import Precision
from nas_tasks.errors import NasError
from test_differentiable import (NUM_OPS, CostModel, NoisyData, TinySearchModel, full_batch,
                                 make_trainer, snapshot)

SGD_ARCH = dict(type='SGD', lr=1.0)  # an arch step moves alpha by exactly minus its gradient


def edge_calls(model):
    return [[op.calls for op in edge.candidates] for edge in model.edges]


class CallRecordingModel(TinySearchModel):
    """Records, per forward, how often each candidate of each edge ran."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls_per_forward = []

    def forward(self, batch):
        before = np.array(edge_calls(self))
        loss = super().forward(batch)
        self.calls_per_forward.append((np.array(edge_calls(self)) - before).tolist())
        return loss


# -- arch_paths ------------------------------------------------------------------------------------

@pytest.mark.parametrize('arch_paths', ['all', 'sampled'])
def test_all_paths_runs_every_candidate_in_arch_steps_and_one_in_weight_steps(tmp_path,
                                                                              arch_paths):
    model = CallRecordingModel()
    trainer = make_trainer(tmp_path, model=model, single_path=True, arch_paths=arch_paths)
    model.arch_params.uniform = False
    trainer.train_step([full_batch(NoisyData(4, seed=1))], [full_batch(NoisyData(4, seed=2))])
    arch_forward, weight_forward = model.calls_per_forward
    drawn = model.arch_params.sampled_indices('alpha').tolist()
    one_hot = [[int(k == index) for k in range(NUM_OPS)] for index in drawn]
    assert weight_forward == one_hot
    assert arch_forward == ([[1] * NUM_OPS] * 2 if arch_paths == 'all' else one_hot)
    assert not model.arch_params.relaxed  # back to single paths after the step


def test_an_all_paths_arch_step_is_the_darts_step(tmp_path):
    """The relaxed architecture step of a single-path search moves alpha exactly as a
    DARTS (all-ops) search does from the same state, and unlike a sampled-path step."""
    arch_batch = full_batch(NoisyData(4, seed=2))
    alphas = {}
    for name, settings in (('all', dict(single_path=True, arch_paths='all')),
                           ('darts', dict(single_path=False)),
                           ('sampled', dict(single_path=True))):
        trainer = make_trainer(tmp_path / name, arch_optimizer=SGD_ARCH, **settings)
        trainer.arch_params.uniform = False
        trainer.arch_params.resample(0)
        with trainer._arch_step_paths():
            trainer.architect.step(arch_batch)
        alphas[name] = trainer.arch_parameters[0].detach().clone()
    initial = TinySearchModel().arch_params.logits['alpha']
    assert not torch.equal(alphas['darts'], initial)
    assert torch.equal(alphas['all'], alphas['darts'])
    assert not torch.allclose(alphas['sampled'], alphas['darts'])


# -- the architecture cost -------------------------------------------------------------------------

def cost_gradient(model):
    model.zero_grad()
    return torch.autograd.grad(model.arch_cost(), model.arch_params.logits['alpha'])[0]


@pytest.mark.parametrize('second_order', [False, True], ids=['first-order', 'second-order'])
def test_the_arch_cost_adds_exactly_its_gradient_to_arch_steps_only(tmp_path, second_order):
    weight_batch, arch_batch = full_batch(NoisyData(4, seed=1)), full_batch(NoisyData(4, seed=2))
    settings = dict(arch_optimizer=SGD_ARCH, second_order=second_order,
                    weight_optimizer=dict(type='SGD', lr=0.1, momentum=0.9))
    plain = make_trainer(tmp_path / 'plain', model=TinySearchModel(), **settings)
    costly = make_trainer(tmp_path / 'costly', model=CostModel(), **settings)
    expected = cost_gradient(costly.model)
    assert expected.abs().min() > 1e-3
    costly.model.costs_seen.clear()

    # A weight step: the cost is not computed and changes nothing.
    plain._weight_step([weight_batch])
    costly._weight_step([weight_batch])
    assert costly.model.costs_seen == []
    for mine, theirs in zip(plain.model.parameters(), costly.model.parameters()):
        assert torch.equal(mine, theirs)

    # An architecture step: alpha moves by exactly the cost's gradient more.
    before = snapshot(plain.arch_parameters)[0]
    assert torch.equal(before, costly.arch_parameters[0])
    plain_loss, plain_cost = plain.architect.step(arch_batch, weight_batch)
    loss, cost = costly.architect.step(arch_batch, weight_batch)
    assert plain_cost is None and cost == pytest.approx(costly.model.costs_seen[0], abs=0)
    assert loss == plain_loss  # the recorded architecture loss is the data loss alone
    moved_more = plain.arch_parameters[0] - costly.arch_parameters[0]
    assert torch.allclose(moved_more, expected, rtol=1e-12, atol=1e-14)
    for mine, theirs in zip(plain.weight_parameters, costly.weight_parameters):
        assert torch.equal(mine, theirs)  # second order restored the weights bit for bit


def test_the_epoch_record_and_log_hold_the_mean_arch_cost(tmp_path):
    model = CostModel()
    trainer = make_trainer(tmp_path, model=model, epochs=2, arch_start_epoch=1)
    trainer.fit()
    warm, last = trainer.history
    assert warm['arch_cost'] is None
    assert len(model.costs_seen) == 2  # the two architecture steps of epoch 2, nothing else
    assert model.costs_seen[0] != model.costs_seen[1]
    assert last['arch_cost'] == pytest.approx(np.mean(model.costs_seen), rel=1e-12)
    log = (tmp_path / 'search.log').read_text()
    assert f'epoch 2/2: weight loss {last["weight_loss"]:.4f}, arch loss ' in log
    assert f'arch cost {last["arch_cost"]:.4g}' in log
    assert 'arch cost' not in log.split('epoch 2/2')[0]


def test_a_cost_that_is_no_scalar_is_one_line(tmp_path):
    class BadCost(TinySearchModel):
        def arch_cost(self):
            return self.arch_params.softmax('alpha')
    trainer = make_trainer(tmp_path, model=BadCost())
    with pytest.raises(NasError, match=r"arch_cost\(\) must return a scalar tensor") as error:
        trainer.fit()
    assert '\n' not in str(error.value)


# -- mixed precision ---------------------------------------------------------------------------------

class FloatModel(TinySearchModel):
    """TinySearchModel in float32 (autocast leaves float64 alone); records the dtype the
    head computed in, and optionally multiplies the loss at forward call ``blow_up_at``."""

    def __init__(self, blow_up_at=None, factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.float()
        self.head_dtypes = []
        self.head.register_forward_hook(lambda module, args, out: self.head_dtypes.append(out.dtype))
        self.blow_up_at, self.factor, self.calls = blow_up_at, factor, 0

    def forward(self, batch):
        x, y = batch
        loss = super().forward([x.float(), y.float()])
        self.calls += 1
        return loss * self.factor if self.calls == self.blow_up_at else loss


def test_amp_on_the_cpu_trains_in_bfloat16(tmp_path):
    settings = dict(epochs=2, arch_start_epoch=1, single_path=True)
    amp = make_trainer(tmp_path / 'amp', model=FloatModel(), amp=True, **settings)
    full = make_trainer(tmp_path / 'full', model=FloatModel(), **settings)
    for trainer in (amp, full):
        trainer.fit()
    assert amp.precision.scaler is None  # bfloat16 needs no loss scaling
    assert set(amp.model.head_dtypes) == {torch.bfloat16} and len(amp.model.head_dtypes) == 6
    assert set(full.model.head_dtypes) == {torch.float32}
    assert all(p.dtype == torch.float32 for p in amp.model.parameters())
    for mine, theirs in zip(amp.history, full.history):
        for key in ('weight_loss', 'arch_loss'):
            if theirs[key] is None:
                continue
            assert math.isfinite(mine[key]) and mine[key] != theirs[key]
            assert mine[key] == pytest.approx(theirs[key], rel=0.05)
    state = torch.load(tmp_path / 'amp' / 'search_state.pth', weights_only=True)
    assert state['scaler'] is None and state['settings']['amp'] is True


def float16_scaled(trainer):
    """The trainer as it runs on CUDA: float16 autocast and a GradScaler (here on the CPU),
    whose first scale fits this model's gradients (2**16 would overflow them)."""
    precision = Precision(True, torch.device('cpu'), torch.float16)
    precision.scaler = torch.amp.GradScaler('cpu', init_scale=256.0)
    trainer.precision = trainer.architect.precision = precision
    return trainer


def test_float16_loss_scaling_skips_an_overflowing_step_and_checkpoints_the_scale(tmp_path):
    """Warm-up iterations, one forward each; the second has a loss 1e4 times larger: its
    scaled float16 gradients overflow, the scaler skips the step and halves its scale, and
    the run goes on; the scale is saved and restored on resume."""
    model = FloatModel(blow_up_at=2, factor=1e4)
    trainer = float16_scaled(make_trainer(tmp_path, model=model, epochs=1, arch_start_epoch=1,
                                          batch_size=2, max_iters_per_epoch=3))
    before_step = {}
    step = trainer._weight_step

    def weight_step(batch):
        before_step[len(before_step)] = snapshot(trainer.weight_parameters)
        return step(batch)
    trainer._weight_step = weight_step
    trainer.fit()
    assert set(model.head_dtypes) == {torch.float16}
    after_skipped = before_step[2]  # before iteration 3 = after iteration 2
    assert all(torch.equal(a, b) for a, b in zip(before_step[1], after_skipped))
    assert not all(torch.equal(a, b) for a, b in zip(before_step[0], before_step[1]))
    assert trainer.precision.scaler.get_scale() == 128.0
    state = torch.load(tmp_path / 'search_state.pth', weights_only=True)
    assert state['scaler']['scale'] == 128.0

    resumed = float16_scaled(make_trainer(tmp_path, model=FloatModel(), epochs=1,
                                          arch_start_epoch=1, batch_size=2,
                                          max_iters_per_epoch=3))
    resumed.prepare_work_dir(resume=True)
    assert resumed.precision.scaler.get_scale() == 128.0


def test_float16_loss_scaling_still_stops_on_a_nan_loss(tmp_path):
    """Forward 4: iteration 2's weight step (after its architecture step)."""
    trainer = float16_scaled(make_trainer(tmp_path, model=FloatModel(blow_up_at=4,
                                                                     factor=math.nan)))
    with pytest.raises(NasError, match='non-finite weight loss \\(nan\\) at epoch 1/1, '
                                       'iteration 2/2') as error:
        trainer.fit()
    assert '\n' not in str(error.value)


class NaNGradientModel(FloatModel):
    """A finite loss whose gradients are NaN at every step (d sqrt(x)/dx at 0)."""

    def forward(self, batch):
        return super().forward(batch) + torch.sqrt(0 * sum(p.sum() for p in self.parameters()))


def test_float16_loss_scaling_stops_when_the_scale_collapses(tmp_path):
    """NaN gradients are skipped like overflows, halving the scale from 256 each time;
    below 2**-8, after 17 skipped steps, the run stops with one line."""
    trainer = float16_scaled(make_trainer(tmp_path, model=NaNGradientModel(), batch_size=2,
                                          weight_data=NoisyData(40, seed=1), arch_start_epoch=1))
    initial = snapshot(trainer.weight_parameters)
    with pytest.raises(NasError, match=r'non-finite gradients at every loss scale \(the float16 '
                                       r'loss scale fell to 0.00195312\) at epoch 1/1, '
                                       r'iteration 17/20') as error:
        trainer.fit()
    assert '\n' not in str(error.value)
    assert all(torch.equal(a, b) for a, b in zip(initial, trainer.weight_parameters))


@pytest.mark.parametrize('settings, message', [
    (dict(amp=True, second_order=True), 'amp=True cannot be combined with second_order=True'),
    (dict(amp='yes'), 'amp must be True or False'),
    (dict(arch_paths='every'), "arch_paths must be 'sampled' or 'all'"),
    (dict(arch_paths='all'), "arch_paths='all' runs every op in the architecture steps of a "
                             'single-path search'),
    (dict(sync_bn=True), "sync_bn=True: torch's SyncBatchNorm runs on CUDA only and the search "
                         'model is on the CPU'),
    (dict(dataloader=dict(batch_size=2, dataset=dict(type='X'))), 'must not name a dataset'),
    (dict(dataloader=dict(batch_size=0)), 'dataloader.batch_size must be'),
    (dict(dataloader=dict(sampler=dict(type='NoSuchSampler'))), 'bad trainer dataloader .*NoSuchSampler'),
    (dict(dataloader=dict(sampler=dict(type='InfiniteSampler'))), 'InfiniteSampler never ends an epoch'),
    (dict(dataloader=dict(batch_size=2, shuffle=True)), 'bad trainer dataloader'),
])
def test_bad_option_settings_are_one_line_errors(tmp_path, settings, message):
    with pytest.raises(NasError, match=message) as error:
        make_trainer(tmp_path / 'w', **settings)
    assert '\n' not in str(error.value)
    assert not (tmp_path / 'w').exists()


# -- SyncBatchNorm -------------------------------------------------------------------------------------

class BatchNormModel(TinySearchModel):
    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm1d(4).double()


@pytest.mark.parametrize('world_size', [1, 2])
def test_sync_bn_converts_batch_norm_when_several_ranks_train(tmp_path, monkeypatch, world_size):
    """On CUDA (stood in for by the device check; SyncBatchNorm's forward is never run here),
    with world size 2 the trainer's model holds SyncBatchNorm with the very parameters the
    optimizer steps; one process keeps BatchNorm."""
    monkeypatch.setattr(precision_module, 'on_cuda', lambda model: True)
    monkeypatch.setattr(precision_module.dist, 'get_world_size', lambda: world_size)
    model = BatchNormModel()
    weight, bias = model.norm.weight, model.norm.bias
    trainer = make_trainer(tmp_path, model=model, sync_bn=True)
    expected = nn.SyncBatchNorm if world_size == 2 else nn.BatchNorm1d
    assert type(trainer.model.norm) is expected
    assert trainer.model.norm.weight is weight and trainer.model.norm.bias is bias
    optimized = {id(p) for group in trainer.weight_optimizer.param_groups for p in group['params']}
    assert {id(weight), id(bias)} <= optimized
    plain = [m for m in trainer.model.modules() if type(m) is nn.BatchNorm1d]
    assert len(plain) == (0 if world_size == 2 else 1)


# -- the dataloader template ------------------------------------------------------------------------------

class Indexed(Dataset):
    """Sample i is (i, NumPy noise): the order and the global NumPy stream a worker uses."""

    def __len__(self):
        return 12

    def __getitem__(self, index):
        return index, float(np.random.rand())


def passes(trainer, half, epoch, pass_index):
    loader = (trainer.weight_loader if half == 'weight' else trainer.arch_loader)
    batches = list(loader.for_pass(epoch, pass_index))
    return [int(i) for indices, _ in batches for i in indices], \
        [float(v) for _, noise in batches for v in noise]


def test_the_data_order_is_a_function_of_seed_half_epoch_and_pass(tmp_path):
    """With 2 loader workers: the order and the workers' NumPy noise repeat for the same
    (seed, half, epoch, pass), in another trainer too, and change with each of them."""
    def build(work_dir, seed=0):
        return make_trainer(work_dir, weight_data=Indexed(), arch_data=Indexed(), seed=seed,
                            dataloader=dict(batch_size=4, num_workers=2,
                                            collate_fn=dict(type='default_collate')))
    first, again, other_seed = build(tmp_path / 'a'), build(tmp_path / 'b'), build(tmp_path / 'c', 1)
    reference = passes(first, 'weight', 3, 0)
    assert sorted(reference[0]) == list(range(12)) and len(set(reference[1])) == 12
    assert passes(again, 'weight', 3, 0) == reference
    for changed in (passes(first, 'arch', 3, 0), passes(first, 'weight', 4, 0),
                    passes(first, 'weight', 3, 1), passes(other_seed, 'weight', 3, 0)):
        assert changed[0] != reference[0] and set(changed[1]).isdisjoint(reference[1])
    assert passes(first, 'weight', 3, 0) == reference  # nothing carried over between passes

