"""Per-round costs stay flat: a search redraws its plots every ``plot_interval``
rounds (or once ``plot_seconds`` have passed), always at the end, and a resume
after throttled rounds ends like an uninterrupted run."""
import json

import pytest

from nas_tasks import loop as loop_module
from nas_tasks.loop import SearchLoop
from nas_tasks.plot_schedule import PlotSchedule
from nas_tasks.strategies.reinforce import ReinforceController
from stand_in_estimators import FlakyEstimator, make_space
from conftest import search_error

ROUNDS = 7


def healthy(kill_at=None):
    """Score = number of 'a' choices, FLOPs = number of 'd' choices; ``kill_at=k``
    interrupts the k-th evaluation (a kill)."""
    return FlakyEstimator(healthy=True, kill_at=kill_at)


def make_loop(work_dir, estimator=None, every_rounds=3, every_seconds=None, clock=None):
    """A REINFORCE controller (AutoGAN's kind of strategy) for ROUNDS rounds of 2 candidates."""
    space = make_space()
    strategy = ReinforceController(space, num_steps=ROUNDS, batch_size=2, hidden_size=16, lr=0.05,
                                   seed=3)
    schedule = PlotSchedule(every_rounds, every_seconds, **({'clock': clock} if clock else {}))
    return SearchLoop(space, strategy, estimator or healthy(), work_dir, candidates_per_round=2,
                      plot_schedule=schedule)


@pytest.fixture
def drawings(monkeypatch):
    """The rounds done (the history's last round + 1) at each drawing of each plot."""
    drawn = {'score_per_round': [], 'score_vs_flops': [], 'controller_rewards': []}

    def spy(name, rounds_of):
        return lambda history, *args, **kwargs: drawn[name].append(rounds_of(history))
    monkeypatch.setattr(loop_module, 'plot_score_per_round',
                        spy('score_per_round', lambda history: history[-1]['round'] + 1))
    monkeypatch.setattr(loop_module, 'plot_score_against_cost',
                        spy('score_vs_flops', lambda history: history[-1]['round'] + 1))
    # The controller's history holds one entry per step (= round here).
    monkeypatch.setattr('nas_tasks.strategies.reinforce.plot_controller_rewards',
                        spy('controller_rewards', len))
    return drawn


def test_plots_are_drawn_every_k_rounds_and_at_the_end(tmp_path, drawings):
    make_loop(tmp_path, every_rounds=3).run()
    # Rounds 3 and 6 are multiples of 3; round 7 is the last, drawn by the finish.
    assert drawings == {name: [3, 6, 7] for name in drawings}


def test_plot_interval_one_draws_after_every_round_as_before(tmp_path, drawings):
    make_loop(tmp_path, every_rounds=1).run()
    # Every round, then once more at the finish.
    assert drawings['score_per_round'] == [1, 2, 3, 4, 5, 6, 7, 7]


def test_plots_are_drawn_once_plot_seconds_have_passed(tmp_path, drawings):
    """With rounds far apart in wall time (a fake clock moving 4 s per reading),
    the plots are drawn whenever 10 s have passed since the last drawing,
    although no round is a multiple of plot_interval."""
    readings = iter(range(0, 10_000, 4))
    make_loop(tmp_path, every_rounds=1000, every_seconds=10, clock=lambda: next(readings)).run()
    drawn = drawings['score_per_round']
    assert drawn[-1] == ROUNDS  # at the end
    assert 1 < len(drawn) - 1 < ROUNDS, drawn  # some rounds, not all


def test_schedule_by_rounds_and_by_seconds():
    now = [0.0]
    schedule = PlotSchedule(every_rounds=5, every_seconds=60, clock=lambda: now[0])
    assert [schedule.due(r) for r in (1, 4, 5, 10)] == [False, False, True, True]
    now[0] = 59.0
    assert not schedule.due(1)
    now[0] = 60.0
    assert schedule.due(1)
    schedule.drawn()  # the wall-time interval starts again
    now[0] = 119.0
    assert not schedule.due(2)
    assert not PlotSchedule(every_rounds=5, every_seconds=None, clock=lambda: 1e9).due(1)


def test_resume_after_throttled_rounds_ends_like_an_uninterrupted_run(tmp_path):
    make_loop(tmp_path / 'straight', every_rounds=3).run()
    interrupted = tmp_path / 'interrupted'
    with pytest.raises(KeyboardInterrupt):
        # Killed in round 4 (2 candidates a round): rounds 0-3 checkpointed, plots drawn after round 3.
        make_loop(interrupted, healthy(kill_at=10), every_rounds=3).run()
    assert sorted(p.name for p in (interrupted / 'plots').iterdir()) == [
        'controller_rewards.png', 'score_per_round.png', 'score_vs_flops.png']
    resumed = healthy()
    make_loop(interrupted, resumed, every_rounds=3).run(resume=True)
    # Rounds 4-6 are left (less round 4's candidate that the round journal kept).
    assert 0 < len(resumed.attempted) <= 2 * ROUNDS - 8, 'the resume evaluated checkpointed rounds again'
    straight = (tmp_path / 'straight' / 'candidates.jsonl').read_text()
    scores = [json.loads(line)['score'] for line in straight.splitlines()]
    assert len(set(scores)) > 1, 'the scores do not vary, so the comparison proves nothing'
    assert (interrupted / 'candidates.jsonl').read_text() == straight
    assert ((interrupted / 'best_arch.json').read_text()
            == (tmp_path / 'straight' / 'best_arch.json').read_text())


@pytest.mark.parametrize('option, message', [
    ('search.plot_interval=0', 'search.plot_interval must be an int >= 1'),
    ('search.plot_seconds=-5', 'search.plot_seconds must be a number > 0'),
])
def test_bad_plot_settings_are_one_line(tmp_path, option, message):
    error = search_error(tmp_path / 'work', option)
    assert message in error and '\n' not in error


def test_history_text_encodes_each_entry_once_and_reads_back_equal():
    import math
    from nas_tasks.history_text import HistoryText, decode_history
    history = [{'round': 0, 'arch': {'k0': 'a', 'on': True, 'norm': None}, 'score': 1.5},
               {'round': 0, 'score': math.nan, 'costs': {'flops': math.inf}, 'status': 'failed'},
               (3, 0.25, 0.5, None)]
    text = HistoryText()
    decoded = decode_history(text.encode(history))
    assert decoded[0] == history[0] and decoded[2] == [3, 0.25, 0.5, None]  # a tuple as a list
    assert math.isnan(decoded[1]['score']) and decoded[1]['costs']['flops'] == math.inf
    # An entry encoded before is not encoded again (changing one in place, which the
    # callers never do, shows it); a replaced or appended entry is.
    history[0]['score'] = 99.0
    history[1] = {'round': 0, 'score': 2.0}
    history.append({'round': 1, 'score': 3.0})
    again = decode_history(text.encode(history))
    assert [entry['score'] for entry in (again[0], again[1], again[3])] == [1.5, 2.0, 3.0]
    assert decode_history(text.encode(history[:2]))[1] == {'round': 0, 'score': 2.0}  # shorter
    assert decode_history([{'round': 0}]) == [{'round': 0}]  # a checkpoint of lists


def test_checkpoint_holds_the_history_as_text_and_resumes_from_either_form(tmp_path):
    loop = make_loop(tmp_path / 'search', every_rounds=100)
    loop.run()
    state = loop.files.load_checkpoint()
    assert isinstance(state['history'], str) and isinstance(state['strategy']['history'], str)
    assert len(state['history'].splitlines()) == 2 * ROUNDS
    for stored in (state, dict(state, history=loop.history)):  # as text, and as a list (before)
        resumed = make_loop(tmp_path / 'other')
        resumed.load_state_dict(stored)
        assert resumed.history == loop.history
        assert resumed.strategy.history == loop.strategy.history


def test_each_record_is_judged_whole_or_not_once(tmp_path):
    """The best whole candidate is looked up several times a round; each record's
    arch is judged (``strategy.is_final``, which validates it) once in the search."""
    loop = make_loop(tmp_path, every_rounds=100)
    judged = []
    is_final = loop.strategy.is_final
    loop.strategy.is_final = lambda arch: judged.append(arch) or is_final(arch)
    best = loop.run()
    assert len(loop.history) == 2 * ROUNDS and best in loop.history
    assert judged == [record['arch'] for record in loop.history]
