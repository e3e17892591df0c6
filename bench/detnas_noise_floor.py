"""DetNAS toy: is the standalone score's own noise smaller than the differences between archs?

Draws ``--archs`` backbones uniformly from the search's space under its
constraints (FLOPs), trains each ``--seeds`` times standalone with the
diagnosis recipe of the config (``diagnose.standalone``: from scratch in the
fine-tuning detector, scored on the search's held-out split), and prints the
spread between seeds of one arch beside the spread between archs, and the
intraclass correlation (the share of the score's variance that the arch
explains). A ranking of candidates can show only what the arch explains.

    OMP_NUM_THREADS=1 python bench/detnas_noise_floor.py configs/detnas/detnas_retinanet_toy.py \
        --archs 4 --seeds 2 --out work_dirs/noise_floor [--cfg-options data_root=...]

Each training's result is kept in ``--out`` (a rerun skips the finished ones).
"""
import argparse
import copy
import json
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'bench'))

from machine import describe_machine  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--archs', type=int, default=4)
    parser.add_argument('--seeds', type=int, default=2)
    parser.add_argument('--draw-seed', type=int, default=0, help='seeds the draw of the archs')
    parser.add_argument('--out', required=True)
    parser.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE')
    return parser.parse_args()


def intraclass_correlation(groups: list[list[float]]) -> float:
    """ICC(1): between-arch variance over total, from a one-way ANOVA with equal group sizes."""
    n = len(groups[0])
    grand = statistics.fmean(x for g in groups for x in g)
    msb = n * sum((statistics.fmean(g) - grand) ** 2 for g in groups) / (len(groups) - 1)
    msw = sum((x - statistics.fmean(g)) ** 2 for g in groups for x in g) / (len(groups) * (n - 1))
    return (msb - msw) / (msb + (n - 1) * msw) if msb + (n - 1) * msw > 0 else float('nan')


def main():
    args = parse_args()
    from nas_tasks.builder import build_component, load_config
    from nas_tasks.cli import parse_cfg_options
    from nas_tasks.constraints import ResourceConstraint, sample_within
    from nas_tasks.diagnostics.recipes import STANDALONE_RECIPES
    from nas_tasks.modules import register_all_modules
    from nas_tasks.registry import COST_MODELS, SPACES

    cfg = load_config(args.config, parse_cfg_options(args.cfg_options))
    register_all_modules(cfg.get('default_scope'))
    space = build_component(SPACES, cfg.search_space, 'search_space')
    cost_model = build_component(COST_MODELS, cfg.estimator.cost_model, 'estimator.cost_model')
    constraint = ResourceConstraint(cost_model.costs, cfg.search.get('constraints'))
    rng = random.Random(args.draw_seed)
    archs = [sample_within(space, rng, constraint) for _ in range(args.archs)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(describe_machine())
    groups = []
    for a, arch in enumerate(archs):
        scores = []
        for s in range(args.seeds):
            record = out / f'arch{a}_seed{s}.json'
            if not record.is_file():
                recipe = build_component(STANDALONE_RECIPES, copy.deepcopy(cfg.diagnose.standalone), 'diagnose.standalone',
                                         default_args=dict(config=cfg, space=space, seed=1000 + s,
                                                           work_dir=out))
                start = time.time()
                result = recipe.train_and_score(arch, out / 'runs' / f'arch{a}_seed{s}')
                record.write_text(json.dumps(dict(arch=arch, seed=s, score=result.score,
                                                  metrics=result.metrics, seconds=time.time() - start)))
            scores.append(json.loads(record.read_text())['score'])
            print(f'arch{a} seed{s}: {scores[-1]:.4f}', flush=True)
        groups.append(scores)
    means = [statistics.fmean(g) for g in groups]
    within = statistics.fmean(statistics.stdev(g) for g in groups) if args.seeds > 1 else float('nan')
    print(f'arch means: {", ".join(f"{m:.4f}" for m in means)}')
    print(f'std between arch means: {statistics.stdev(means):.4f}; mean std between seeds of one arch: '
          f'{within:.4f}; ICC(1) {intraclass_correlation(groups) if args.seeds > 1 else float("nan"):+.2f}')


if __name__ == '__main__':
    main()
