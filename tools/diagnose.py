"""Is a search's ranking right, and does its pick beat random architectures? Train standalone and compare.

python tools/diagnose.py CONFIG WORK_DIR [--random N] [--strategy-baseline S] [--cfg-options k=v ...]
                        [--retry-failed]
torchrun --nproc_per_node N tools/diagnose.py CONFIG WORK_DIR --launcher pytorch

CONFIG is the search's config, with a ``diagnose`` section (docs/diagnostics.md).
Writes WORK_DIR/diagnostics/: report.json, scatter.png (the K candidates' ranking),
random_baseline.png (with --random), diagnose.log and one result file per trained
architecture; a rerun continues a killed diagnosis.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nas_tasks.cli import parse_cfg_options, run_cli  # noqa: E402
from nas_tasks.launchers import add_launcher_argument  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the config the search ran (configs/...), with a diagnose section')
    parser.add_argument('work_dir', help="the search's work directory (it holds candidates.jsonl)")
    parser.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE',
                        help='override config values, e.g. diagnose.num_candidates=6')
    parser.add_argument('--random', type=int, metavar='N',
                        help="also train N random architectures of the search's space and place "
                             "the search's pick (best_arch.json) among them (diagnose.num_random); "
                             'diagnose.num_candidates=0 skips the ranking of K candidates')
    parser.add_argument('--pick-seeds', type=int, metavar='P',
                        help='with --random: train the pick P times with different seeds and place '
                             'its lowest score, so its own training noise cannot beat chance for it '
                             '(diagnose.pick_seeds, default 1)')
    parser.add_argument('--strategy-baseline', type=int, metavar='S',
                        help="rerun the search's strategy and RandomSearch over S seeds with the "
                             "search's estimator (its trained shared weights) and as many evaluations, "
                             'and compare their best scores (diagnose.strategy_baseline)')
    parser.add_argument('--retry-failed', action='store_true',
                        help='train the candidates whose standalone training failed once more')
    add_launcher_argument(parser)
    return parser.parse_args()


def _interval(entry: dict) -> str:
    if entry['value'] is None:
        return 'n/a'
    ci = entry['ci']
    return f"{entry['value']:+.3f}" + (f' [{ci[0]:+.3f}, {ci[1]:+.3f}]' if ci else '')


def main() -> int:
    args = parse_args()
    from nas_tasks import dist
    from nas_tasks.diagnostics.diagnosis import (DIAGNOSTICS_DIR, RANDOM_PLOT_NAME, REPORT_NAME, SCATTER_NAME,
                                                 run_diagnosis)

    cfg_options = parse_cfg_options(args.cfg_options)
    if args.random is not None:
        cfg_options['diagnose.num_random'] = args.random
    if args.pick_seeds is not None:
        cfg_options['diagnose.pick_seeds'] = args.pick_seeds
    if args.strategy_baseline is not None:
        cfg_options['diagnose.strategy_baseline'] = args.strategy_baseline
    report = run_diagnosis(args.config, args.work_dir, cfg_options, args.launcher, args.retry_failed)
    if dist.is_main_process():
        level = f"{report['settings']['confidence']:.0%}"
        out = os.path.join(args.work_dir, DIAGNOSTICS_DIR)
        if report['candidates']:
            _print_ranking(report, level)
        if report['random_baseline']:
            _print_random_baseline(report['random_baseline'], report['settings'], level)
        if report['strategy_baseline']:
            _print_strategy_baseline(report['strategy_baseline'], report['search']['score_name'], level)
        print(f'report: {os.path.join(out, REPORT_NAME)}')
        if report['candidates']:
            print(f'scatter: {os.path.join(out, SCATTER_NAME)}')
        if report['random_baseline']:
            print(f'random baseline plot: {os.path.join(out, RANDOM_PLOT_NAME)}')
    return 0


def _print_ranking(report: dict, level: str) -> None:
    agreement = report['agreement']
    overlap = agreement['top_k_overlap']
    print(f"kendall_tau={_interval(agreement['kendall_tau'])} "
          f"spearman_rho={_interval(agreement['spearman_rho'])} ({level} bootstrap CIs, "
          f"{len(report['candidates'])} candidates)")
    print(f"top-{overlap['k']} overlap {overlap['overlap']}/{overlap['k']} "
          f"(chance {overlap['chance']:.2f})")
    for name, ablation in report['ablations'].items():
        print(f"{name}: kendall_tau={_interval(ablation['agreement']['kendall_tau'])} "
              f"tau_change={_interval(ablation['tau_change'])}")


def _print_random_baseline(baseline: dict, settings: dict, level: str) -> None:
    percentile, minus_median, best = baseline['percentile'], baseline['minus_median'], baseline['best_random']
    ci = percentile['ci']
    print(f"pick {settings['standalone_score_name']}={baseline['pick']['standalone_score']:.4f} "
          f"percentile={percentile['value']:.1f}%" + (f' [{ci[0]:.1f}%, {ci[1]:.1f}%]' if ci else '')
          + f" minus_median={_interval(minus_median)} ({level} bootstrap CIs, {baseline['scored']} "
          f"random architectures, {baseline['failed']} failed)")
    if baseline['pick'].get('seed_scores'):
        scores = ', '.join(f'seed {seed}: {score:.4f}' for seed, score in baseline['pick']['seed_scores'].items())
        print(f'the pick placed by the lowest of its trainings ({scores})')
    print(f"best random {best['name']}={best['standalone_score']:.4f}: the pick "
          f"{'beats' if best['pick_beats_it'] else 'does not beat'} it")
    for name, reference in baseline['references'].items():
        score = reference['standalone_score']
        print(f"reference {name}=" + ('failed' if score is None
                                      else f"{score:.4f} percentile={reference['percentile']:.1f}%"))
    print(f"beat chance: {'yes' if baseline['beat_chance'] else 'no'}")


def _print_strategy_baseline(baseline: dict, score_name: str, level: str) -> None:
    for side, name in (('search', baseline['strategy']), ('random', 'RandomSearch')):
        bests = ' '.join(f"{run['best_score']:.4f}" for run in baseline[side]['runs'])
        print(f"{name}: mean best {score_name}={baseline[side]['mean_best']:.4f} (seeds "
              f"{baseline['seeds']}: {bests}; {baseline['evaluations']} evaluations each)")
    print(f"strategy minus random={_interval(baseline['difference'])} ({level} bootstrap CI over seeds)")


if __name__ == '__main__':
    run_cli(main)
