"""The diagnosis in words: one paragraph that says what the numbers mean."""
from __future__ import annotations

import math

# Conventional reading of |tau| (weak below the first, strong from the second).
MODERATE_TAU, STRONG_TAU = 0.3, 0.6


def _interval(ci) -> str:
    return '[n/a]' if ci is None else f'[{ci[0]:+.2f}, {ci[1]:+.2f}]'


def _strength(tau: float) -> str:
    size = abs(tau)
    return 'strong' if size >= STRONG_TAU else 'moderate' if size >= MODERATE_TAU else 'weak'


def _ordinal(n: int) -> str:
    suffix = 'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')
    return f'{n}{suffix}'


def _tau_reading(ci, what: str) -> str:
    """What tau's interval says about a ranking, for the verdict."""
    if ci is None:
        return f'{what} has no bootstrap interval (every resample was all ties)'
    if ci[0] > 0:
        return f"τ's interval lies above 0: {what} orders candidates better than chance"
    if ci[1] < 0:
        return (f"τ's interval lies below 0: {what} orders candidates roughly opposite to "
                'standalone training, so its best are not the best')
    return (f"τ's interval includes 0, so at this K {what} is not distinguishable from a "
            'random ranking: diagnose more candidates (num_candidates) or train them longer '
            'before trusting it')


def write_verdict(report: dict) -> str:
    """The verdict on a diagnosis ``report``: on the ranking of its K candidates, on
    its pick against random architectures, or on both (what the diagnosis ran)."""
    parts = []
    if report['candidates']:
        parts.append(_ranking_verdict(report))
    if report.get('random_baseline'):
        parts.append(random_baseline_verdict(report['random_baseline'],
                                             f"{report['settings']['confidence']:.0%}"))
    if report.get('strategy_baseline'):
        parts.append(strategy_baseline_verdict(report['strategy_baseline'],
                                               f"{report['settings']['confidence']:.0%}"))
    return ' '.join(parts)


def strategy_baseline_verdict(baseline: dict, level: str) -> str:
    """Whether the search's strategy finds better scores than random sampling, under the
    search's own estimator, in words."""
    difference = baseline['difference']
    ci = difference['ci']
    seeds = len(baseline['seeds'])
    if ci is not None and ci[0] > 0:
        reading = 'the strategy finds better architectures than random sampling under this estimator'
    elif ci is not None and ci[1] < 0:
        reading = 'random sampling finds better architectures than the strategy under this estimator'
    else:
        reading = ('at this number of seeds the strategy is not distinguishable from random '
                   'sampling under this estimator')
    return (f"Rerun over {seeds} seeds with {baseline['evaluations']} evaluations each, "
            f"{baseline['strategy']} reaches a best estimator score of "
            f"{baseline['search']['mean_best']:.4g} on average and RandomSearch "
            f"{baseline['random']['mean_best']:.4g} (the strategy ahead on {baseline['strategy_wins']} "
            f"of {seeds} seeds), a difference of {difference['value']:+.4g} ({level} CI "
            f"{_score_interval(ci)}): {reading}.")


def _percent_interval(ci) -> str:
    return '[n/a]' if ci is None else f'[{ci[0]:.0f}%, {ci[1]:.0f}%]'


def _score_interval(ci) -> str:
    return '[n/a]' if ci is None else f'[{ci[0]:+.4g}, {ci[1]:+.4g}]'


def random_baseline_verdict(baseline: dict, level: str) -> str:
    """Whether the search's pick beat random architectures of its space on this run, in words."""
    percentile, minus_median = baseline['percentile'], baseline['minus_median']
    pick = baseline['pick']['standalone_score']
    count = baseline['scored']
    if baseline['beat_chance']:
        head = 'The search beat chance on this run'
    elif baseline['worse_than_chance']:
        head = 'The search did worse than chance on this run'
    else:
        head = 'On this run the search is not distinguishable from chance'
    sentences = [
        f"{head}: its pick scores {pick:.4g} trained standalone, above {percentile['value']:.0f}% of "
        f"{count} random architectures of its space trained the same way ({level} CI "
        f"{_percent_interval(percentile['ci'])}), {minus_median['value']:+.4g} over their median "
        f"{minus_median['median']:.4g} (CI {_score_interval(minus_median['ci'])})."]
    seed_scores = baseline['pick'].get('seed_scores')
    if seed_scores:
        listed = ', '.join(f'{score:.4g}' for score in seed_scores.values())
        sentences.append(f'That is the lowest of its {len(seed_scores)} trainings with different '
                         f'seeds ({listed}).')
    if not (baseline['beat_chance'] or baseline['worse_than_chance']):
        sentences.append('The interval includes the median: more random architectures (--random) '
                         'narrow it.')
    best = baseline['best_random']
    relation = 'beats' if best['pick_beats_it'] else 'does not beat'
    sentences.append(f"The pick {relation} the best random architecture ({best['name']}, "
                     f"{best['standalone_score']:.4g}).")
    for name, reference in baseline['references'].items():
        if reference['status'] == 'ok':
            sentences.append(f"Reference '{name}' scores {reference['standalone_score']:.4g}, above "
                             f"{reference['percentile']:.0f}% of the random ones.")
        else:
            sentences.append(f"Reference '{name}' failed to train.")
    if baseline['failed']:
        sentences.append(f"{baseline['failed']} of {baseline['num_random']} random trainings failed "
                         'and are left out.')
    return ' '.join(sentences)


def _ranking_verdict(report: dict) -> str:
    """The verdict on the ranking of the K candidates: rank agreement, top-k, ablations."""
    count = len(report['candidates'])
    level = f"{report['settings']['confidence']:.0%}"
    agreement = report['agreement']
    tau, rho = agreement['kendall_tau'], agreement['spearman_rho']
    if not math.isfinite(tau['value'] if tau['value'] is not None else math.nan):
        return (f'Of {count} candidates, {_all_tied(report)}: with no order on one side there is '
                'no rank agreement to measure. Train the standalone candidates longer, score '
                'on a larger held-out split, or diagnose a search whose scores differ.')
    sentences = [
        f"On {count} candidates the search's scores and standalone training agree with Kendall "
        f"τ = {tau['value']:+.2f} ({level} CI {_interval(tau['ci'])}, {_strength(tau['value'])}) "
        f"and Spearman ρ = {rho['value']:+.2f} (CI {_interval(rho['ci'])}).",
        _tau_reading(tau['ci'], "the search's ranking") + '.',
    ]
    overlap = agreement['top_k_overlap']
    sentences.append(f"The search's {overlap['k']} best include {overlap['overlap']} of the "
                     f"standalone {overlap['k']} best ({overlap['chance']:.1f} expected by chance), "
                     f"and its best candidate ranks {_ordinal(agreement['search_best_standalone_rank'])} "
                     f'of {count} standalone.')
    for name, ablation in report['ablations'].items():
        sentences.append(_ablation_sentence(name, ablation))
    sentences.append(f'These figures hold for K={count} and the standalone recipe used; '
                     'a larger K narrows the intervals.')
    return ' '.join(sentences)


def _ablation_sentence(name: str, ablation: dict) -> str:
    tau = ablation['agreement']['kendall_tau']
    what = ablation['description']
    if tau['value'] is None or not math.isfinite(tau['value']):
        return f'Scored {what}, the candidates all tie, so τ is undefined.'
    delta = ablation['tau_change']
    ci = delta['ci']
    if ci is not None and (ci[0] > 0 or ci[1] < 0):
        change = ("the search's own scoring ranks better" if ci[0] > 0
                  else f'scoring {what} ranks better')
    else:
        change = 'the change is not distinguishable from 0 at this K'
    return (f"Scored {what}, τ = {tau['value']:+.2f} (CI {_interval(tau['ci'])}); the search's "
            f"scoring changes τ by {delta['value']:+.2f} (CI {_interval(ci)}): {change}.")


def _all_tied(report: dict) -> str:
    search = {c['search_score'] for c in report['candidates']}
    standalone = {c['standalone_score'] for c in report['candidates']}
    if len(standalone) < 2:
        return f'every standalone score is the same ({next(iter(standalone)):.4g})'
    return f"every search score is the same ({next(iter(search)):.4g})"
