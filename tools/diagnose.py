"""Is a search's ranking right? Train K of its candidates standalone and compare the rankings.

python tools/diagnose.py CONFIG WORK_DIR [--cfg-options k=v ...] [--retry-failed]
torchrun --nproc_per_node N tools/diagnose.py CONFIG WORK_DIR --launcher pytorch

CONFIG is the search's config, with a ``diagnose`` section (docs/diagnostics.md).
Writes WORK_DIR/diagnostics/: report.json, scatter.png, diagnose.log and one
result file per trained candidate; a rerun continues a killed diagnosis.
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
    from nas_tasks.diagnostics.diagnosis import DIAGNOSTICS_DIR, REPORT_NAME, SCATTER_NAME, run_diagnosis

    report = run_diagnosis(args.config, args.work_dir, parse_cfg_options(args.cfg_options),
                           args.launcher, args.retry_failed)
    if dist.is_main_process():
        agreement = report['agreement']
        level = f"{report['settings']['confidence']:.0%}"
        overlap = agreement['top_k_overlap']
        print(f"kendall_tau={_interval(agreement['kendall_tau'])} "
              f"spearman_rho={_interval(agreement['spearman_rho'])} ({level} bootstrap CIs, "
              f"{len(report['candidates'])} candidates)")
        print(f"top-{overlap['k']} overlap {overlap['overlap']}/{overlap['k']} "
              f"(chance {overlap['chance']:.2f})")
        for name, ablation in report['ablations'].items():
            print(f"{name}: kendall_tau={_interval(ablation['agreement']['kendall_tau'])} "
                  f"tau_change={_interval(ablation['tau_change'])}")
        out = os.path.join(args.work_dir, DIAGNOSTICS_DIR)
        print(f'report: {os.path.join(out, REPORT_NAME)}')
        print(f'scatter: {os.path.join(out, SCATTER_NAME)}')
    return 0


if __name__ == '__main__':
    run_cli(main)
