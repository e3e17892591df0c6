"""NAS-FPN search benchmark on the toy data, measured inside a real search loop.

1. Proxy evaluation time per architecture, split into training, inference on
   the held-out split and COCO evaluation, with the AP each one reached.
2. The controller's share of the search time: time spent in the strategy's
   ask() and tell() over the whole search's wall time.

    python bench/nas_fpn.py [--steps 3] [--batch 4] [--iters 120]
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'bench'))

from machine import describe_machine  # noqa: E402

TOY_CONFIG = REPO / 'configs/nas_fpn/nas_fpn_retinanet_toy.py'
PARTS = ('training', 'inference', 'coco_eval')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=str(TOY_CONFIG), help='search config')
    parser.add_argument('--steps', type=int, default=3, help='controller steps')
    parser.add_argument('--batch', type=int, default=4, help='architectures per controller step')
    parser.add_argument('--iters', type=int, default=None,
                        help='proxy training iterations (default: the config\'s)')
    return parser.parse_args()


def timed(method, spent: list):
    """``method`` that adds its run time to ``spent[0]``."""
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start
    return wrapper


def main():
    args = parse_args()
    from detection.toy_data import make_coco
    from nas_tasks.builder import load_config
    from nas_tasks.modules import register_all_modules
    from nas_tasks.search import build_search

    register_all_modules()
    print(describe_machine())
    with tempfile.TemporaryDirectory() as tmp:
        options = {'data_root': str(make_coco(Path(tmp) / 'toy_coco')),
                   'strategy.num_steps': args.steps, 'strategy.batch_size': args.batch}
        if args.iters is not None:
            options['train_cfg.max_iters'] = args.iters
        cfg = load_config(args.config, options)
        loop = build_search(cfg, Path(tmp) / 'work')
        controller_seconds = [0.0]
        loop.strategy.ask = timed(loop.strategy.ask, controller_seconds)
        loop.strategy.tell = timed(loop.strategy.tell, controller_seconds)
        start = time.perf_counter()
        loop.run()
        total = time.perf_counter() - start

    history = loop.history
    print(f'proxy task: {cfg.train_cfg.get("max_iters") or cfg.train_cfg.get("max_epochs")} '
          f'{"iterations" if "max_iters" in cfg.train_cfg else "epochs"}, batch '
          f'{cfg.train_dataloader.batch_size}, {len(history)} architectures')
    print(f'{"round":>5} {"total s":>8} ' + ' '.join(f'{part + " s":>11}' for part in PARTS)
          + f' {"AP":>7}')
    for record in history:
        metrics = record['metrics']
        print(f'{record["round"]:>5} {record["costs"]["seconds"]:>8.1f} '
              + ' '.join(f'{metrics[f"seconds_{part}"]:>11.2f}' for part in PARTS)
              + f' {record["score"]:>7.4f}')
    per_arch = statistics.mean(r['costs']['seconds'] for r in history)
    parts = {part: statistics.mean(r['metrics'][f'seconds_{part}'] for r in history)
             for part in PARTS}
    print(f'mean per architecture: {per_arch:.1f} s (' + ', '.join(
        f'{part} {seconds:.2f} s = {100 * seconds / per_arch:.1f}%'
        for part, seconds in parts.items()) + ')')
    scores = [r['score'] for r in history]
    print(f'AP: min {min(scores):.4f}, mean {statistics.mean(scores):.4f}, max {max(scores):.4f}')
    print(f'search: {total:.1f} s wall; controller ask+tell {controller_seconds[0]:.3f} s = '
          f'{100 * controller_seconds[0] / total:.3f}% of it')


if __name__ == '__main__':
    main()
