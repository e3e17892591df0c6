"""DetNAS benchmarks, measured side by side in one run.

1. Supernet training-step time over the step time of the same architecture
   built as a plain standalone backbone (DetNASBackbone), both inside the toy
   RetinaNet, same batch, interleaved repetitions. Goal: at most 1.10.
2. Candidates evaluated per minute on the toy data, split into BN
   recalibration, inference and COCO evaluation.

    python bench/detnas.py [--steps 20] [--candidates 8] [--supernet-iters 100]
"""
import argparse
import contextlib
import copy
import io
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'bench'))

from machine import describe_machine  # noqa: E402

TOY_CONFIG = REPO / 'configs/detnas/detnas_retinanet_toy.py'


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=20, help='timed training steps per model')
    parser.add_argument('--candidates', type=int, default=8, help='candidates to evaluate')
    parser.add_argument('--supernet-iters', type=int, default=100,
                        help='supernet training iterations before candidate evaluation')
    return parser.parse_args()


def build_detector(cfg, backbone_cfg):
    from mmdet.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone = backbone_cfg
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def time_train_steps(models: dict, batch, steps: int, before_step: dict) -> dict:
    """Median seconds of one train step (forward, backward, SGD step) per model, interleaved."""
    import torch
    from mmengine.optim import OptimWrapper
    wrappers = {name: OptimWrapper(torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9))
                for name, m in models.items()}
    times = {name: [] for name in models}
    for step in range(steps + 2):  # the first two are warm-up
        for name, model in models.items():
            model.train()
            before_step.get(name, lambda: None)()
            start = time.perf_counter()
            model.train_step(batch, wrappers[name])
            if step >= 2:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def bench_step_ratio(cfg, data_root: Path, steps: int) -> None:
    from detection.detnas.space import DetNASSpace
    from detection.data import build_full_split_loader
    space = DetNASSpace('small')
    arch = space.sample(random.Random(0))
    supernet = build_detector(cfg, dict(type='DetNASSuperNet', variant='small'))
    supernet.backbone.set_arch(arch)
    standalone = build_detector(cfg, dict(type='DetNASBackbone', arch=arch, variant='small'))
    batch = next(iter(build_full_split_loader(cfg.train_dataloader)))
    # The supernet step includes setting the path, as in supernet training.
    medians = time_train_steps(
        dict(supernet=supernet, standalone=standalone), batch, steps,
        before_step=dict(supernet=lambda: supernet.backbone.set_arch(arch)))
    ratio = medians['supernet'] / medians['standalone']
    print(f'train step, batch {cfg.train_dataloader.batch_size} at 128 px: '
          f"supernet {medians['supernet'] * 1000:.1f} ms, standalone "
          f"{medians['standalone'] * 1000:.1f} ms, ratio {ratio:.3f} (goal <= 1.10)")


def bench_candidates(cfg, data_root: Path, work_dir: Path, candidates: int) -> None:
    from nas_tasks.registry import ESTIMATORS, SPACES
    space = SPACES.build(cfg.search_space)
    estimator_cfg = dict(cfg.estimator)
    estimator = ESTIMATORS.build(estimator_cfg, default_args=dict(space=space, config=cfg, seed=0))
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        estimator.train_shared(work_dir, resume=False)
    train_seconds = time.perf_counter() - start
    rng = random.Random(1)
    archs = [space.sample(rng) for _ in range(candidates)]
    start = time.perf_counter()
    results = estimator.evaluate(archs)
    total = time.perf_counter() - start
    parts = {name: sum(r.metrics[f'seconds_{name}'] for r in results) / candidates
             for name in ('bn_recalibration', 'inference', 'coco_eval')}
    per_candidate = total / candidates
    scores = [r.score for r in results]
    print(f'supernet training: {cfg.train_cfg.max_iters} iterations in {train_seconds:.1f} s')
    print(f'candidates: {candidates} in {total:.1f} s = {60 / per_candidate:.1f} per minute '
          f'({per_candidate:.2f} s each: ' + ', '.join(
              f'{name} {seconds:.2f} s ({100 * seconds / per_candidate:.0f}%)'
              for name, seconds in parts.items()) + ')')
    print(f'candidate mAP: min {min(scores):.4f}, max {max(scores):.4f}')


def main():
    args = parse_args()
    from detection.toy_data import make_coco
    from nas_tasks.builder import load_config
    from nas_tasks.modules import register_all_modules

    register_all_modules()
    print(describe_machine())
    with tempfile.TemporaryDirectory() as tmp:
        data_root = make_coco(Path(tmp) / 'toy_coco')
        cfg = load_config(str(TOY_CONFIG), {'data_root': str(data_root),
                                            'train_cfg.max_iters': args.supernet_iters})
        bench_step_ratio(cfg, data_root, args.steps)
        bench_candidates(cfg, data_root, Path(tmp) / 'work', args.candidates)


if __name__ == '__main__':
    main()
