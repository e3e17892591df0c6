"""A differentiable search that goes wrong: non-finite losses and gradients, non-finite
weights, a truncated checkpoint, a finished or resultless work dir, NaN architecture
weights at decoding."""
import math

import pytest
import torch

from nas_tasks.errors import NasError
from test_differentiable import NoisyData, TinySearchModel, make_trainer

# Two iterations per epoch: 8 samples per half, batch 4 (make_trainer's default).
ITERS = 2


class PoisonedModel(TinySearchModel):
    """Forward call number ``at`` (1-based, counting every forward of the run)
    returns a NaN loss (``kind='loss'``), or a finite loss whose gradient is NaN
    for every parameter (``kind='gradient'``: d sqrt(x)/dx is infinite at 0)."""

    def __init__(self, at, kind):
        super().__init__()
        self.at, self.kind, self.calls = at, kind, 0

    def forward(self, batch):
        loss = super().forward(batch)
        self.calls += 1
        if self.calls != self.at:
            return loss
        if self.kind == 'loss':
            return loss * math.nan
        return loss + torch.sqrt(0 * sum(p.sum() for p in self.parameters()))


def params_of(trainer):
    return {name: p.detach().clone() for name, p in trainer.model.named_parameters()}


def record_params_before_each_step(trainer) -> list:
    """A list that receives the parameters as they were before each ``train_step``."""
    before = []
    step = trainer.train_step

    def recording_step(*args):
        before.append(params_of(trainer))
        return step(*args)
    trainer.train_step = recording_step
    return before


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def all_finite(state_dict):
    return all(bool(torch.isfinite(t).all()) for t in state_dict.values() if t.is_floating_point())


WARM_UP = dict(arch_start_epoch=2)          # weight steps only: 1 forward per iteration
FIRST_ORDER = dict(arch_start_epoch=0)      # an architecture forward, then a weight forward
SECOND_ORDER = dict(arch_start_epoch=0, second_order=True)  # 4 architecture forwards + 1 weight


@pytest.mark.parametrize('settings, at, kind, expected, iteration', [
    (WARM_UP, 4, 'loss', 'non-finite weight loss (nan)', 2),
    (WARM_UP, 3, 'gradient', 'non-finite weight gradient', 1),
    (FIRST_ORDER, 5, 'loss', 'non-finite architecture loss (nan)', 1),
    (FIRST_ORDER, 7, 'gradient', 'non-finite architecture gradient', 2),
    (FIRST_ORDER, 8, 'loss', 'non-finite weight loss (nan)', 2),
    (SECOND_ORDER, 12, 'loss', 'non-finite architecture loss (nan)', 1),   # L_val at w'
    (SECOND_ORDER, 13, 'gradient', 'non-finite architecture gradient', 1),  # Hessian term
], ids=['weight-loss', 'weight-grad', 'arch-loss', 'arch-grad', 'weight-loss-after-arch-step',
        'second-order-loss', 'second-order-hessian'])
def test_a_non_finite_step_stops_the_run_untaken_and_it_resumes(tmp_path, settings, at, kind,
                                                                 expected, iteration):
    """The poisoned forward falls in epoch 2: the error names it, nothing moved in the
    failing step, the only checkpoint is epoch 1's, and a resume from it (the poison
    gone) ends exactly where a run without poison ends."""
    settings = dict(epochs=2, **settings)
    trainer = make_trainer(tmp_path / 'poisoned', model=PoisonedModel(at, kind), **settings)
    before_each_step = record_params_before_each_step(trainer)
    with pytest.raises(NasError) as error:
        trainer.fit()
    message = str(error.value)
    assert message.startswith(expected), message
    assert f'at epoch 2/2, iteration {iteration}/{ITERS} (both 1-based)' in message
    assert 'after epoch 1' in message and '--resume' in message and 'grad_clip' in message
    assert '\n' not in message
    assert len(before_each_step) == ITERS + iteration
    after, before = params_of(trainer), before_each_step[-1]
    weights = [name for name in after if not name.startswith('arch_params.')]
    assert all(torch.equal(after[name], before[name]) for name in weights)
    # An iteration's architecture step comes before its weight step, so only a failed
    # weight step after architecture steps began leaves a moved architecture behind.
    arch_moved = not torch.equal(after['arch_params.logits.alpha'],
                                 before['arch_params.logits.alpha'])
    assert arch_moved == (expected.startswith('non-finite weight')
                          and settings['arch_start_epoch'] == 0)
    assert all(bool(torch.isfinite(p).all()) for p in after.values())

    checkpoint = load(tmp_path / 'poisoned' / 'search_state.pth')
    assert checkpoint['epoch'] == 1 and all_finite(checkpoint['model'])

    resumed = make_trainer(tmp_path / 'poisoned', **settings)
    resumed.fit(resume=True)
    clean = make_trainer(tmp_path / 'clean', **settings)
    clean.fit()
    assert resumed.history == clean.history
    for name, value in clean.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def test_a_model_holding_nan_is_never_checkpointed(tmp_path):
    def break_a_weight_in_epoch_2(trainer, epoch):
        if epoch == 1:
            with torch.no_grad():
                trainer.model.head.weight[0, 0] = math.inf
    trainer = make_trainer(tmp_path, epochs=3, on_epoch_end=break_a_weight_in_epoch_2)
    with pytest.raises(NasError) as error:
        trainer.fit()
    message = str(error.value)
    assert message.startswith('after epoch 2 (1-based) the search model holds NaN or infinite '
                              'values (head.weight), so no checkpoint was written')
    assert 'after epoch 1' in message and '--resume' in message and '\n' not in message
    checkpoint = load(tmp_path / 'search_state.pth')
    assert checkpoint['epoch'] == 1 and all_finite(checkpoint['model'])


def build_noisy(work_dir, on_epoch_end=None):
    """Dropout and noisy data: a resume must restore every generator to end identical."""
    model = TinySearchModel(seed=0, dropout=0.2)
    return make_trainer(work_dir, model=model, weight_data=NoisyData(8, seed=1, noise=0.1),
                        arch_data=NoisyData(8, seed=2, noise=0.1), epochs=3, arch_start_epoch=1,
                        on_epoch_end=on_epoch_end)


def test_a_truncated_latest_checkpoint_falls_back_to_the_previous_epoch(tmp_path):
    whole = build_noisy(tmp_path / 'whole')
    whole.fit()

    class Killed(Exception):
        pass

    def kill_in_epoch_3(trainer, epoch):
        if epoch == 2:
            raise Killed
    with pytest.raises(Killed):
        build_noisy(tmp_path / 'cut', on_epoch_end=kill_in_epoch_3).fit()
    latest, previous = tmp_path / 'cut' / 'search_state.pth', tmp_path / 'cut' / 'search_state.prev.pth'
    assert load(latest)['epoch'] == 2 and load(previous)['epoch'] == 1
    latest.write_bytes(latest.read_bytes()[:1000])  # a disk that filled up mid-write

    torch.manual_seed(7)  # a new process's generators differ
    resumed = build_noisy(tmp_path / 'cut')
    resumed.fit(resume=True)
    log = (tmp_path / 'cut' / 'search.log').read_text()
    assert log.count('resuming from the previous checkpoint search_state.prev.pth instead') == 1
    assert resumed.history == whole.history
    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    # The unreadable file was replaced, not kept as the fallback.
    assert load(latest)['epoch'] == 3 and load(previous)['epoch'] == 2


def test_a_resume_takes_the_learning_rates_of_its_settings(tmp_path):
    """What the NaN error advises: resume with lower learning rates. The cosine schedule
    keeps its place and anneals from the new initial lr, as if it had been set from the start."""
    def settings(weight_lr, arch_lr):
        return dict(epochs=3, max_iters_per_epoch=1,
                    param_scheduler=dict(type='CosineAnnealingLR', eta_min=0.001, by_epoch=True),
                    weight_optimizer=dict(type='SGD', lr=weight_lr, momentum=0.9),
                    arch_optimizer=dict(type='Adam', lr=arch_lr))

    class Killed(Exception):
        pass

    def kill_in_epoch_2(trainer, epoch):
        if epoch == 1:
            raise Killed
    with pytest.raises(Killed):
        make_trainer(tmp_path / 'cut', on_epoch_end=kill_in_epoch_2, **settings(0.1, 0.01)).fit()
    resumed = make_trainer(tmp_path / 'cut', **settings(0.04, 0.002))
    resumed.fit(resume=True)
    lowered_from_the_start = make_trainer(tmp_path / 'low', **settings(0.04, 0.002))
    lowered_from_the_start.fit()

    lrs = [record['lr'] for record in resumed.history]
    assert lrs[0] == 0.1  # epoch 1 ran before the change
    assert lrs[1:] == pytest.approx([r['lr'] for r in lowered_from_the_start.history[1:]],
                                    rel=1e-12)
    assert lrs[1] < 0.04
    assert resumed.arch_optimizer.param_groups[0]['lr'] == 0.002
    log = (tmp_path / 'cut' / 'search.log').read_text()
    assert 'weight_optimizer: initial learning rate 0.04 (the checkpoint has 0.1)' in log


def test_resume_refuses_results_without_a_checkpoint(tmp_path):
    (tmp_path / 'best_arch.json').write_text('{}')
    with pytest.raises(NasError, match='holds best_arch.json but no search_state.pth') as error:
        make_trainer(tmp_path).fit(resume=True)
    assert '\n' not in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['best_arch.json']


def test_a_recorded_result_survives_resume_until_more_epochs_train(tmp_path):
    trainer = make_trainer(tmp_path, epochs=1)
    trainer.fit()
    result = dict(arch=dict(op=[1, 2]), score=0.5, metrics=dict(loss=1.25))
    trainer.record_result(result)

    finished = make_trainer(tmp_path, epochs=1)
    finished.fit(resume=True)
    assert finished.result == result and finished.global_step == ITERS

    extended = make_trainer(tmp_path, epochs=2)
    extended.fit(resume=True)
    assert extended.global_step == 2 * ITERS and extended.result is None
    assert load(tmp_path / 'search_state.pth')['result'] is None


@pytest.mark.parametrize('which', ['alpha', 'beta'])
def test_the_decoder_refuses_non_finite_architecture_weights(which):
    from backbones.auto_deeplab.decode import decode_genotype, viterbi_path
    from backbones.auto_deeplab.arch import num_edges
    alpha = torch.softmax(torch.randn(num_edges(5), 8), -1)
    beta = torch.full((4, 4, 3), 1 / 3)
    assert len(decode_genotype(alpha)) == 10 and len(viterbi_path(beta)) == 4  # finite: decoded
    if which == 'alpha':
        alpha[3, 2] = math.nan
        decode = lambda: decode_genotype(alpha)  # noqa: E731
    else:
        beta[1, 0, 1] = math.inf
        decode = lambda: viterbi_path(beta)  # noqa: E731
    with pytest.raises(NasError, match=f'the architecture weights {which} hold 1 NaN or infinite '
                                       'value') as error:
        decode()
    assert '\n' not in str(error.value)


def test_a_checkpoint_that_lacks_keys_gets_one_line(tmp_path):
    torch.save({'epoch': 1, 'model': {}}, tmp_path / 'search_state.pth')
    trainer = make_trainer(tmp_path)
    with pytest.raises(NasError, match="is not this search's state \\(it lacks global_step") as error:
        trainer.fit(resume=True)
    assert '\n' not in str(error.value)
