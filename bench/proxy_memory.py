"""Memory over a long proxy search: RSS and mmengine's named instances across
many proxy candidate trainings, with and without releasing each Runner's
mmengine instances.

Every proxy candidate builds an mmengine Runner, which registers an MMLogger,
a MessageHub, a Visualizer and a DefaultScope under its own name
(``ManagerMixin._instance_dict``). ``ProxyDetectionEstimator`` releases them
after each run (``detection.proxy.released_mmengine_instances``). The
``unfixed`` variant replaces that with what the estimator did before: close
the run's log file and keep every instance. Each variant runs in its own
process, so their RSS figures start from the same point.

    python tools/make_toy_data.py coco data/toy_coco
    python bench/proxy_memory.py [--candidates 50] [--data-root data/toy_coco]

The candidates are tiny: the toy NAS-FPN proxy config, 1 training iteration,
4 held-out images.
"""
import argparse
import contextlib
import json
import logging
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'bench'))

from machine import describe_machine  # noqa: E402

CONFIG = 'configs/nas_fpn/nas_fpn_retinanet_toy.py'
REPORT_AFTER = (1, 10, 25, 50)
VARIANTS = ('unfixed', 'fixed')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--candidates', type=int, default=50)
    parser.add_argument('--data-root', default='data/toy_coco', help='toy COCO from tools/make_toy_data.py')
    parser.add_argument('--variant', choices=VARIANTS, help='run one variant in this process (internal)')
    return parser.parse_args()


def rss_mib() -> float:
    """Resident set size of this process, from /proc."""
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
    raise RuntimeError('no VmRSS in /proc/self/status')


@contextlib.contextmanager
def close_log_files_only():
    """The cleanup before the fix: close new loggers' log files, keep every instance."""
    from mmengine.logging import MMLogger
    before = set(MMLogger._instance_dict)
    yield
    for name in set(MMLogger._instance_dict) - before:
        logger = MMLogger._instance_dict[name]
        for handler in list(logger.handlers):
            if isinstance(handler, logging.FileHandler):
                handler.close()
                logger.removeHandler(handler)


def run_variant(variant: str, num_candidates: int, data_root: str) -> list[dict]:
    """Evaluate ``num_candidates`` proxy candidates; a record after each of REPORT_AFTER."""
    import tempfile
    import detection.proxy as proxy
    from nas_tasks.builder import load_config
    from nas_tasks.modules import register_all_modules
    from nas_tasks.registry import ESTIMATORS, SPACES

    if variant == 'unfixed':
        proxy.released_mmengine_instances = close_log_files_only
    register_all_modules()
    cfg = load_config(CONFIG, {'data_root': f'{Path(data_root).resolve()}/',
                               'train_cfg.max_iters': 1,
                               'val_dataloader.dataset.indices': 4})
    space = SPACES.build(cfg.search_space)
    estimator = ESTIMATORS.build(dict(cfg.estimator), default_args=dict(space=space, config=cfg, seed=0))
    records = []
    with tempfile.TemporaryDirectory() as work_dir:
        estimator.train_shared(Path(work_dir), resume=False)
        start = time.perf_counter()
        for index in range(1, num_candidates + 1):
            estimator.evaluate([space.sample(random.Random(index))])
            if index in REPORT_AFTER or index == num_candidates:
                records.append(dict(candidates=index, rss_mib=rss_mib(),
                                    instances=proxy.count_mmengine_instances(),
                                    seconds=time.perf_counter() - start))
    return records


def main():
    args = parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.candidates, args.data_root)))
        return
    if not (Path(args.data_root) / 'annotations').is_dir():
        sys.exit(f'no toy COCO at {args.data_root}; write it with: '
                 f'python tools/make_toy_data.py coco {args.data_root}')
    print(describe_machine())
    results = {}
    for variant in VARIANTS:
        child = subprocess.run([sys.executable, __file__, '--variant', variant,
                                '--candidates', str(args.candidates), '--data-root', args.data_root],
                               cwd=REPO, capture_output=True, text=True)
        if child.returncode != 0:
            sys.exit(f'{variant} run failed:\n{child.stderr[-3000:]}')
        results[variant] = json.loads(child.stdout.strip().splitlines()[-1])
    print(f'{args.candidates} proxy candidates ({CONFIG}, 1 iteration, 4 held-out images)')
    print('| candidates | RSS before fix | RSS after fix | mmengine instances before fix | after fix |')
    print('|---|---|---|---|---|')
    for before, after in zip(results['unfixed'], results['fixed']):
        print(f"| {after['candidates']} | {before['rss_mib']:.0f} MiB | {after['rss_mib']:.0f} MiB | "
              f"{before['instances']} | {after['instances']} |")
    seconds = {variant: records[-1]['seconds'] / records[-1]['candidates']
               for variant, records in results.items()}
    print(f"seconds per candidate: {seconds['unfixed']:.1f} before, {seconds['fixed']:.1f} after")


if __name__ == '__main__':
    main()
