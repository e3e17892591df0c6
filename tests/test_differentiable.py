"""Differentiable search: mixed ops, architecture parameters and the bilevel trainer
(first/second-order steps, warm-up, exact resume, DDP equivalence, plots)."""
import math
import os
import pickle

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import Dataset

from conftest import free_port
from nas_tasks.differentiable import ArchParameters, DifferentiableTrainer, MixedOp, plot_arch_weights
from nas_tasks.errors import NasError

FEATURES = 4
NUM_OPS = 3


class Counting(nn.Module):
    """An op that counts its calls."""

    def __init__(self, op):
        super().__init__()
        self.op, self.calls = op, 0

    def forward(self, x):
        self.calls += 1
        return self.op(x)


class TinySearchModel(nn.Module):
    """Two mixed edges of three ops (linear, linear+tanh, a scaled identity),
    then a linear head; ``model(batch)`` is the mean squared error, as the
    trainer's contract asks. Optional dropout draws on the global torch RNG."""

    def __init__(self, seed=0, dropout=0.0, init_seed=None):
        super().__init__()
        torch.manual_seed(seed if init_seed is None else init_seed)
        self.arch_params = ArchParameters({'alpha': (2, NUM_OPS)}, init_scale=0.5, seed=seed)
        self.edges = nn.ModuleList(
            MixedOp([Counting(nn.Linear(FEATURES, FEATURES)),
                     Counting(nn.Sequential(nn.Linear(FEATURES, FEATURES), nn.Tanh())),
                     Counting(Scale())]) for _ in range(2))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(FEATURES, 1)
        self.uniform_seen = []
        self.double()

    def forward(self, batch):
        x, y = batch
        self.uniform_seen.append(self.arch_params.uniform)
        weights, active = self.arch_params.op_weights('alpha')
        h = x
        for i, edge in enumerate(self.edges):
            h = edge(h, weights[i], None if active is None else int(active[i]))
        return ((self.head(self.dropout(h)).squeeze(-1) - y) ** 2).mean()


COST_WEIGHTS = torch.tensor([[0.3, 1.0, 2.0], [0.5, 0.1, 3.0]], dtype=torch.float64)


class CostModel(TinySearchModel):
    """``arch_cost()``: the expected per-edge cost under softmax(alpha), as FNA's latency term."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.costs_seen = []

    def arch_cost(self):
        cost = 0.5 * (self.arch_params.softmax('alpha') * COST_WEIGHTS).sum()
        self.costs_seen.append(float(cost.detach()))
        return cost


class Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.7))

    def forward(self, x):
        return self.scale * x


class NoisyData(Dataset):
    """Regression pairs; with ``noise`` each read adds NumPy noise (global RNG), like augmentation."""

    def __init__(self, size, seed, noise=0.0):
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(size, FEATURES, generator=generator, dtype=torch.float64)
        self.y = torch.sin(self.x.sum(1)) + seed
        self.noise = noise

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        jitter = self.noise * float(np.random.randn()) if self.noise else 0.0
        return self.x[index], self.y[index] + jitter


def make_trainer(tmp_path, model=None, weight_data=None, arch_data=None, batch_size=4,
                 **settings):
    """A trainer of a TinySearchModel; ``batch_size`` goes into its dataloader template,
    whose batches are stacked tensors (default_collate)."""
    settings = {'epochs': 1, 'log_interval': 2,
                'dataloader': dict(batch_size=batch_size, collate_fn=dict(type='default_collate')),
                'weight_optimizer': dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-3),
                'arch_optimizer': dict(type='Adam', lr=0.05, betas=(0.5, 0.999), weight_decay=1e-3),
                **settings}
    return DifferentiableTrainer(model or TinySearchModel(), weight_data or NoisyData(8, seed=1),
                                 arch_data or NoisyData(8, seed=2), work_dir=tmp_path, **settings)


def full_batch(data):
    return [data.x, data.y]


def snapshot(params):
    return [p.detach().clone() for p in params]


def assert_same(before, after):
    assert all(torch.equal(a, b) for a, b in zip(before, after))


def assert_all_changed(before, after):
    assert all(not torch.equal(a, b) for a, b in zip(before, after))


# -- mixed ops and architecture parameters --------------------------------------------------------

def test_mixed_op_is_the_softmax_weighted_sum_of_its_ops():
    arch = ArchParameters({'alpha': (5, 3)}, init_scale=1.0, seed=3).double()
    weights = arch.softmax('alpha')
    assert torch.allclose(weights.sum(-1), torch.ones(5, dtype=torch.float64), atol=1e-15)
    assert weights.std() > 0.05  # not trivially uniform
    ops = [nn.Linear(FEATURES, FEATURES).double(), nn.Tanh(), nn.Identity()]
    x = torch.randn(2, FEATURES, dtype=torch.float64)
    w = weights[1]
    expected = w[0] * ops[0](x) + w[1] * torch.tanh(x) + w[2] * x
    assert torch.allclose(MixedOp(ops)(x, w), expected, rtol=0, atol=1e-14)


def test_single_path_runs_only_the_drawn_op_with_straight_through_weights():
    model = TinySearchModel()
    arch = model.arch_params
    arch.single_path, arch.uniform = True, False
    arch.resample(7)
    weights, active = arch.op_weights('alpha')
    one_hot = torch.zeros(2, NUM_OPS, dtype=torch.float64).scatter_(1, active[:, None], 1.0)
    assert torch.equal(weights, one_hot)
    model(full_batch(NoisyData(4, seed=0)))
    for edge, index in zip(model.edges, active.tolist()):
        assert [op.calls for op in edge.candidates] == [int(k == index) for k in range(NUM_OPS)]
    # Gradient as through the softmax: d(c . w)/d logits = J_softmax^T c.
    c = torch.randn(2, NUM_OPS, dtype=torch.float64)
    (grad,) = torch.autograd.grad((arch.op_weights('alpha')[0] * c).sum(), arch.logits['alpha'])
    (expected,) = torch.autograd.grad((arch.softmax('alpha') * c).sum(), arch.logits['alpha'])
    assert torch.allclose(grad, expected, atol=1e-15)


def test_single_path_sampling_is_uniform_in_warm_up_and_follows_the_softmax_after():
    arch = ArchParameters({'alpha': (4, NUM_OPS)}, seed=5, single_path=True)
    with torch.no_grad():
        arch.logits['alpha'].copy_(torch.tensor([6.0, 0.0, 0.0]))  # softmax: 0.995 on op 0
    draws = {}
    for uniform in (True, False):
        arch.uniform = uniform
        samples = []
        for step in range(600):
            arch.resample(step)
            samples.append(arch.sampled_indices('alpha'))
        draws[uniform] = torch.stack(samples).flatten()  # 2400 draws
    frequency = torch.bincount(draws[True], minlength=NUM_OPS) / 2400
    assert torch.allclose(frequency, torch.full((NUM_OPS,), 1 / 3), atol=0.04)  # ~4 sigma
    assert (draws[False] == 0).float().mean() > 0.98
    # The path is a function of (seed, step): another instance (another rank) draws the same.
    twin = ArchParameters({'alpha': (4, NUM_OPS)}, seed=5, single_path=True)
    twin.load_state_dict(arch.state_dict())
    twin.uniform = False
    twin.resample(599)
    assert torch.equal(twin.sampled_indices('alpha'), samples[-1])


# -- first-order steps and warm-up ---------------------------------------------------------------

def hand_grads(model, batch, params):
    model.zero_grad()
    return torch.autograd.grad(model(batch), params)


def test_first_order_step_uses_the_arch_half_and_moves_only_arch_params(tmp_path):
    """One iteration, each half one batch: the arch step is plain SGD (lr 1) on the
    arch-half loss at the initial weights; the weight step is SGD on the weight-half
    loss at the updated arch params."""
    weight_data, arch_data = NoisyData(4, seed=1), NoisyData(4, seed=2)
    trainer = make_trainer(tmp_path, weight_data=weight_data, arch_data=arch_data, grad_clip=None,
                           weight_optimizer=dict(type='SGD', lr=0.1),
                           arch_optimizer=dict(type='SGD', lr=1.0))
    model = trainer.model
    weights, arch = trainer.weight_parameters, trainer.arch_parameters
    assert len(weights) == 2 * (2 + 2 + 1) + 2 and len(arch) == 1
    w0, a0 = snapshot(weights), snapshot(arch)

    expected_arch_grad = hand_grads(model, full_batch(arch_data), arch)[0]
    assert not torch.allclose(expected_arch_grad, hand_grads(model, full_batch(weight_data), arch)[0])
    # The architecture step computes no weight gradient (the weights are frozen for it).
    weight_grads_computed = []
    hooks = [p.register_hook(lambda grad: weight_grads_computed.append(grad)) for p in weights]
    trainer.architect.step(full_batch(arch_data))
    for hook in hooks:
        hook.remove()
    assert weight_grads_computed == []
    assert all(p.requires_grad for p in weights)  # and thawed after it
    assert_same(w0, weights)
    assert torch.allclose(a0[0] - arch[0], expected_arch_grad, rtol=1e-12, atol=1e-15)
    a1 = snapshot(arch)

    expected_weight_grads = hand_grads(model, full_batch(weight_data), weights)
    trainer._weight_step([full_batch(weight_data)])
    assert_same(a1, arch)
    assert all(p.grad is None for p in arch)  # the weight step's arch grads are dropped
    for before, after, grad in zip(w0, weights, expected_weight_grads):
        assert torch.allclose(before - after, 0.1 * grad, rtol=1e-12, atol=1e-15)

    # The same iteration through fit() lands on the same values.
    again = make_trainer(tmp_path / 'fit', weight_data=weight_data, arch_data=arch_data,
                         grad_clip=None, weight_optimizer=dict(type='SGD', lr=0.1),
                         arch_optimizer=dict(type='SGD', lr=1.0))
    again.fit()
    assert again.global_step == 1
    for mine, theirs in zip(again.model.parameters(), model.parameters()):
        assert torch.allclose(mine, theirs, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize('second_order', [False, True])
def test_arch_grad_clip_clips_the_architecture_gradient_by_norm(tmp_path, second_order):
    """arch_grad_clip (the official FNA search's 35) bounds the norm of the architecture
    gradient, the cost's included, before the step; without it the step follows the
    whole gradient. SGD lr 1 makes the step the gradient itself."""
    arch_data = NoisyData(4, seed=2)
    steps, grads = {}, {}
    for clip in (None, 0.05):
        trainer = make_trainer(tmp_path / str(clip), model=CostModel(), arch_data=arch_data,
                               arch_grad_clip=clip, second_order=second_order,
                               weight_optimizer=dict(type='SGD', lr=0.1),
                               arch_optimizer=dict(type='SGD', lr=1.0))
        arch = trainer.arch_parameters
        if clip is None:  # the unclipped gradient of L_val + cost, at first order
            model = trainer.model
            model.zero_grad()
            objective = model(full_batch(arch_data)) + model.arch_cost()
            grads['first'] = torch.autograd.grad(objective, arch)[0]
        before = snapshot(arch)
        trainer.architect.step(full_batch(arch_data), full_batch(NoisyData(4, seed=1)))
        steps[clip] = before[0] - arch[0].detach()
    unclipped, clipped = steps[None], steps[0.05]
    assert float(unclipped.norm()) > 0.2  # large enough for the clip to act
    if not second_order:
        assert torch.allclose(unclipped, grads['first'], rtol=1e-10, atol=1e-12)
    assert float(clipped.norm()) == pytest.approx(0.05, rel=1e-5)
    # Clipping by norm scales the whole gradient: same direction.
    assert torch.allclose(clipped, unclipped * 0.05 / unclipped.norm(), rtol=1e-5, atol=1e-9)


def test_warm_up_trains_weights_only_and_draws_uniformly(tmp_path):
    model = TinySearchModel()
    trainer = make_trainer(tmp_path, model=model, epochs=2, arch_start_epoch=1, single_path=True)
    a0, w0 = snapshot(trainer.arch_parameters), snapshot(trainer.weight_parameters)
    seen = []

    def after_epoch(trainer, epoch):
        seen.append((epoch, snapshot(trainer.arch_parameters), list(model.uniform_seen)))
        model.uniform_seen.clear()
        return {'answer': 42}

    trainer.on_epoch_end = after_epoch
    trainer.fit()
    (_, a_warm, uniform_warm), (_, a_end, uniform_end) = seen
    assert_same(a0, a_warm)  # not a bit of arch change during warm-up
    assert not torch.equal(a_end[0], a0[0])
    assert uniform_warm == [True] * 2 and uniform_end == [False] * 4  # (arch + weight) x 2 iters
    assert not torch.equal(trainer.weight_parameters[0], w0[0])
    warm, last = trainer.history
    assert warm['arch_loss'] is None and last['arch_loss'] > 0 and warm['metrics'] == {'answer': 42}
    assert [r['epoch'] for r in trainer.history] == [0, 1]
    assert [r['step'] for r in trainer.history] == [2, 4]
    assert np.allclose(np.sum(last['arch_weights']['alpha'], axis=-1), 1.0)


# -- second order ---------------------------------------------------------------------------------

def unrolled_objective(model, weights, arch_batch, weight_batch, xi, momentum_term):
    """L_val(w', alpha) with w' = w - xi * (m + grad_w L_train(w, alpha)), differentiable in
    alpha by plain autograd (m: momentum buffer and weight-decay terms, constant in alpha)."""
    grads = torch.autograd.grad(model(weight_batch), weights, create_graph=True)
    names = {id(p): name for name, p in model.named_parameters()}
    virtual = {names[id(w)]: w - xi * (m + g) for w, g, m in zip(weights, grads, momentum_term)}
    return torch.func.functional_call(model, virtual, (arch_batch,), strict=False), virtual


@pytest.mark.parametrize('momentum, weight_decay', [(0.0, 0.0), (0.9, 3e-2)])
def test_second_order_arch_gradient_matches_the_unrolled_derivative(tmp_path, momentum, weight_decay):
    xi = 0.5
    weight_data, arch_data = NoisyData(4, seed=1), NoisyData(4, seed=2)
    trainer = make_trainer(tmp_path, weight_data=weight_data, arch_data=arch_data, second_order=True,
                           weight_optimizer=dict(type='SGD', lr=xi, momentum=momentum,
                                                 weight_decay=weight_decay))
    model, weights, (alpha,) = trainer.model, trainer.weight_parameters, trainer.arch_parameters
    w_batch, a_batch = full_batch(weight_data), full_batch(arch_data)
    if momentum:  # a real weight step first, so that a momentum buffer exists
        trainer._weight_step([w_batch])
    buffers = [trainer.weight_optimizer.state.get(w, {}).get('momentum_buffer') for w in weights]
    momentum_term = [momentum * b + weight_decay * w.detach() if b is not None
                     else weight_decay * w.detach() for w, b in zip(weights, buffers)]
    w0, a0 = snapshot(weights), alpha.detach().clone()

    _, _, (trainer_grad,) = trainer.architect.unrolled_grads(a_batch, w_batch)
    assert_same(w0, weights)  # the virtual steps leave the weights as they were, bit for bit

    def objective(values):
        with torch.no_grad():
            alpha.copy_(values)
        loss, _ = unrolled_objective(model, weights, a_batch, w_batch, xi, momentum_term)
        return loss.detach()

    # Central differences of the unrolled objective, entry by entry (error ~h^2 ~ 1e-10).
    h = 1e-5
    numeric = torch.zeros_like(a0)
    for index in np.ndindex(*a0.shape):
        plus, minus = a0.clone(), a0.clone()
        plus[index] += h
        minus[index] -= h
        numeric[index] = (objective(plus) - objective(minus)) / (2 * h)
    with torch.no_grad():
        alpha.copy_(a0)
    # The exact derivative by double back-propagation agrees with the numeric one.
    loss, _ = unrolled_objective(model, weights, a_batch, w_batch, xi, momentum_term)
    (exact,) = torch.autograd.grad(loss, alpha)
    assert torch.allclose(exact, numeric, rtol=0, atol=1e-8)
    # The trainer approximates the Hessian-vector product by central differences with
    # a weight perturbation of length r = 0.01: its error is O(r^2) relative to that
    # term, which the first-order gradient misses altogether.
    hessian_term = (exact - _grad_at_virtual(model, weights, alpha, a_batch, w_batch, xi,
                                             momentum_term)).norm()
    assert hessian_term > 0.1 * exact.norm()
    error = (trainer_grad - numeric).norm()
    assert error < 1e-3 * hessian_term
    # ... and shrinks as r^2: a ten times shorter perturbation, about 100 times less error.
    trainer.architect.radius = 0.001
    _, _, (finer_grad,) = trainer.architect.unrolled_grads(a_batch, w_batch)
    assert 30 < error / (finer_grad - exact).norm() < 300


def _grad_at_virtual(model, weights, alpha, arch_batch, weight_batch, xi, momentum_term):
    """grad_alpha L_val(w', alpha) with w' held fixed (DARTS's first term)."""
    _, virtual = unrolled_objective(model, weights, arch_batch, weight_batch, xi, momentum_term)
    virtual = {name: value.detach() for name, value in virtual.items()}
    loss = torch.func.functional_call(model, virtual, (arch_batch,), strict=False)
    return torch.autograd.grad(loss, alpha)[0]


# -- resume, work dir, settings ------------------------------------------------------------------

RESUME_SETTINGS = [
    dict(single_path=True, second_order=False, arch_start_epoch=1),
    dict(single_path=False, second_order=True, arch_start_epoch=0),
]


@pytest.mark.parametrize('settings', RESUME_SETTINGS, ids=['single-path', 'second-order'])
def test_resumed_search_ends_bit_identical_to_an_uninterrupted_one(tmp_path, settings):
    """Dropout (torch RNG) and NumPy noise in the data (numpy RNG) must be restored too."""
    common = dict(epochs=3, batch_size=2,
                  param_scheduler=dict(type='CosineAnnealingLR', eta_min=0.01, by_epoch=True),
                  **settings)

    def build(work_dir, init_seed, on_epoch_end=None):
        model = TinySearchModel(seed=0, init_seed=init_seed, dropout=0.2)
        return make_trainer(work_dir, model=model,
                            weight_data=NoisyData(6, seed=1, noise=0.1),
                            arch_data=NoisyData(4, seed=2, noise=0.1), on_epoch_end=on_epoch_end,
                            **common)

    whole = build(tmp_path / 'whole', init_seed=0)
    whole.fit()

    class Killed(Exception):
        pass

    def kill_in_second_epoch(trainer, epoch):
        if epoch == 1:  # trained, but killed before its checkpoint
            raise Killed
    with pytest.raises(Killed):
        build(tmp_path / 'cut', init_seed=0, on_epoch_end=kill_in_second_epoch).fit()
    np.random.seed(123), torch.manual_seed(123)  # the new process's RNGs differ
    resumed = build(tmp_path / 'cut', init_seed=99)  # other initial weights, replaced on resume
    assert resumed.fit(resume=True) is resumed.history
    assert resumed.global_step == whole.global_step == 9

    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    for name in ('weight_optimizer', 'arch_optimizer', 'schedules'):
        assert _flat(getattr(whole, name).state_dict()) == _flat(getattr(resumed, name).state_dict())
    assert resumed.history == whole.history
    assert resumed.history[-1]['lr'] < resumed.history[0]['lr']  # the cosine schedule advanced
    assert not torch.equal(whole.model.state_dict()['arch_params.logits.alpha'],
                           TinySearchModel(seed=0).state_dict()['arch_params.logits.alpha'])


def _flat(value):
    """A comparable form of a state dict: tensors as bytes."""
    if isinstance(value, dict):
        return {k: _flat(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_flat(v) for v in value]
    if isinstance(value, torch.Tensor):
        return (value.dtype, tuple(value.shape), value.numpy().tobytes())
    return value


def test_checkpoint_loads_weights_only_and_a_used_work_dir_is_refused(tmp_path):
    trainer = make_trainer(tmp_path, epochs=2, max_iters_per_epoch=1)
    trainer.fit()
    checkpoint = tmp_path / 'search_state.pth'
    state = torch.load(checkpoint, weights_only=True)
    assert state['epoch'] == 2 and state['global_step'] == 2 and len(state['history']) == 2
    assert set(state) >= {'model', 'weight_optimizer', 'arch_optimizer', 'param_schedulers', 'rng',
                          'world_size'}
    assert state['world_size'] == 1
    assert 'arch_params.logits.alpha' in state['model']
    before = checkpoint.read_bytes()
    with pytest.raises(NasError, match='already holds a search; pass --resume to continue it, or '
                                       'choose another --work-dir') as error:
        make_trainer(tmp_path, epochs=2).fit()
    assert '\n' not in str(error.value)
    assert checkpoint.read_bytes() == before
    # Resuming a finished search trains nothing more.
    again = make_trainer(tmp_path, epochs=2, max_iters_per_epoch=1)
    assert again.fit(resume=True) == trainer.history and checkpoint.read_bytes() == before


@pytest.mark.parametrize('settings, message', [
    (dict(weight_optimizer=dict(type='Sgd', lr=0.1)), "unknown weight_optimizer type 'Sgd'"),
    (dict(arch_optimizer=dict(type='Adam', lr=0.1, beta=0.5)),
     "arch_optimizer 'Adam' has no setting 'beta'"),
    (dict(weight_optimizer=dict(type='SGD', lr=-1)), 'Invalid learning rate'),
    (dict(second_order=True, weight_optimizer=dict(type='Adam')), "weight_optimizer type='SGD'"),
    (dict(param_scheduler=dict(type='StepLR')), "bad param_scheduler .*'step_size'"),
    (dict(param_scheduler=['cosine']), 'param_scheduler must be an mmengine scheduler config'),
    (dict(accumulative_counts=3), 'fewer than accumulative_counts 3'),
    (dict(accumulative_counts=2, second_order=True), 'accumulative_counts > 1 needs first-order'),
    (dict(batch_size=9), 'fewer than batch_size 9'),
    (dict(arch_start_epoch=3, epochs=2), 'arch_start_epoch'),
    (dict(arch_grad_clip=0), 'arch_grad_clip must be a number > 0, got 0'),
])
def test_bad_settings_are_one_line_errors(tmp_path, settings, message):
    with pytest.raises(NasError, match=message) as error:
        make_trainer(tmp_path, **settings)
    assert '\n' not in str(error.value)


def test_a_model_without_arch_params_is_refused(tmp_path):
    with pytest.raises(NasError, match='has no arch_params'):
        make_trainer(tmp_path, model=nn.Linear(2, 2))


# -- plots ------------------------------------------------------------------------------------------

def test_plot_arch_weights_writes_a_png_per_group(tmp_path):
    generator = torch.Generator().manual_seed(0)
    history = [dict(epoch=e, arch_weights={
        'alpha': torch.softmax(torch.randn(20, 8, generator=generator), -1).tolist(),
        'beta': torch.softmax(torch.randn(12, 4, 3, generator=generator), -1).tolist()})
        for e in range(3)]
    paths = plot_arch_weights(history, tmp_path / 'plots', op_names={'alpha': list('abcdefgh')})
    assert [p.name for p in paths] == ['arch_alpha.png', 'arch_beta.png']
    for path in paths:
        assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert sorted(p.name for p in (tmp_path / 'plots').iterdir()) == ['arch_alpha.png',
                                                                       'arch_beta.png']
    assert plot_arch_weights([], tmp_path / 'none') == []


def test_trainer_plots_after_every_epoch(tmp_path):
    make_trainer(tmp_path, epochs=1, max_iters_per_epoch=1).fit()
    assert (tmp_path / 'plots' / 'arch_alpha.png').read_bytes()[:4] == b'\x89PNG'
    assert 'epoch 1/1: weight loss' in (tmp_path / 'search.log').read_text()


# -- distributed --------------------------------------------------------------------------------

# (model, settings): the resume settings, and FNA's scheme (relaxed architecture steps
# with a cost term computed outside the DDP forward and back-propagated with it).
DDP_CASES = [(TinySearchModel, settings) for settings in RESUME_SETTINGS] + [
    (CostModel, dict(single_path=True, arch_paths='all', arch_start_epoch=1)),
    # Accumulated: each rank's first micro-batch under DDP's no_sync.
    (CostModel, dict(single_path=True, arch_paths='all', arch_start_epoch=1,
                     accumulative_counts=2))]


def _ddp_worker(rank, world, port, tmp_path):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=port)
    torch.distributed.init_process_group('gloo', rank=rank, world_size=world)
    try:
        for index, (model, settings) in enumerate(DDP_CASES):
            trainer = make_trainer(tmp_path / f'ddp{index}', model=model(),
                                   **ddp_settings(settings, batch_size=2))
            trainer.fit()
            if rank == 0:
                with open(tmp_path / f'ddp{index}.pkl', 'wb') as f:
                    pickle.dump((trainer.model.state_dict(), trainer.history), f)
    finally:
        torch.distributed.destroy_process_group()


def ddp_settings(settings, batch_size):
    return dict(epochs=2, grad_clip=1.0, batch_size=batch_size, **settings)


@pytest.mark.slow
def test_two_ranks_train_like_one_process_with_twice_the_batch(tmp_path):
    """Under DDP each rank reads batch_size samples and gradients are averaged, so 2
    ranks at batch 2 take the steps of 1 process at batch 4 (the shards of one
    shuffled order), architecture steps included, in single-path (the same path on
    every rank, unused ops), second-order and FNA's mode (relaxed architecture steps
    with a cost, taken outside DDP with the weights frozen), also with 2 accumulated
    micro-batches a step."""
    mp.spawn(_ddp_worker, args=(2, free_port(), tmp_path), nprocs=2, join=True)
    for index, (model, settings) in enumerate(DDP_CASES):
        with open(tmp_path / f'ddp{index}.pkl', 'rb') as f:
            ddp_state, ddp_history = pickle.load(f)
        single = make_trainer(tmp_path / f'one{index}', model=model(),
                              **ddp_settings(settings, batch_size=4))
        single.fit()
        assert not torch.allclose(single.model.state_dict()['arch_params.logits.alpha'],
                                  model().state_dict()['arch_params.logits.alpha'])
        assert len(ddp_history) == 2
        assert ddp_history[-1]['step'] == 4 // settings.get('accumulative_counts', 1)
        for key, value in single.model.state_dict().items():
            assert torch.allclose(value, ddp_state[key], rtol=1e-10, atol=1e-12), (settings, key)
        for mine, theirs in zip(single.history, ddp_history):
            assert math.isclose(mine['weight_loss'], theirs['weight_loss'], rel_tol=1e-10)
            assert np.allclose(mine['arch_weights']['alpha'], theirs['arch_weights']['alpha'],
                               rtol=1e-10, atol=0)
            assert (mine['arch_cost'] is None) == (theirs['arch_cost'] is None)
            if mine['arch_cost'] is not None:
                assert math.isclose(mine['arch_cost'], theirs['arch_cost'], rel_tol=1e-10)
