"""How much noise do fresh latent vectors put into the AutoGAN reward, next to
the differences between architectures? (docs/autogan.md, "The reward's latent
vectors".)

The toy search's shared GAN (configs/autogan/autogan_cifar10_toy.py's widths
and reward classifier) is trained for ITERATIONS x shared_d_steps D steps on
random whole architectures (32 px), without dynamic resets. Then NUM_ARCHS
random architectures are each scored DRAWS times with fresh latent vectors
(reward.noise='fresh', each draw another round) and once with the fixed set
(reward.noise='fixed', its GAN trained identically), for each number of images
per reward. Printed per row: the std of one architecture's IS over the fresh
draws (mean over the architectures), the std between the architectures' mean
IS, Kendall's tau between the rankings of two fresh draws (mean and lowest over
the pairs) and between the fixed set's ranking and the fresh draws' mean.

    python tools/make_toy_data.py cifar10 data/toy_cifar10
    python tools/train_toy_classifier.py data/toy_cifar10
    python bench/autogan_reward_noise.py [--data-root data/toy_cifar10] [--iterations 20]
                                         [--images 500 5000]
"""
from __future__ import annotations

import argparse
import itertools
import os
import random
import sys
import time

import numpy as np
import torch
from mmengine.config import Config
from scipy.stats import kendalltau

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import gan  # noqa: E402,F401  (registers the estimator and the extractors)
from gan.autogan import AutoGANSpace  # noqa: E402
from nas_tasks.registry import ESTIMATORS  # noqa: E402
from nas_tasks.strategies.base import SearchPosition  # noqa: E402

TOY_CONFIG = os.path.join(ROOT, 'configs/autogan/autogan_cifar10_toy.py')


def trained_estimator(config: Config, data_root: str, num_images: int, noise: str, iterations: int):
    """The toy estimator with ``noise`` latents, its shared GAN trained on random whole archs."""
    space = AutoGANSpace()
    settings = dict(config.estimator)
    settings['gan'] = dict(settings['gan'], reset_window=10 ** 9)  # no reset: one GAN trained throughout
    settings['real_data'] = dict(settings['real_data'], data_root=data_root)
    settings['reward'] = dict(settings['reward'], num_images=num_images, noise=noise,
                              extractor=dict(type='ToyClassifier',
                                             weights_path=os.path.join(data_root, 'toy_classifier.pth')))
    estimator = ESTIMATORS.build(dict(settings, space=space, seed=0))
    rng = random.Random(0)
    for iteration in range(iterations):
        position = SearchPosition(iteration, 2, iteration * estimator.rounds_per_iteration)
        estimator.train_during_search(position, lambda: space.sample(rng))
    return estimator


def scores(estimator, archs, draws: int) -> np.ndarray:
    """``[draws, len(archs)]`` rewards, each draw in another round (fresh latents, if fresh)."""
    rows = []
    for draw in range(draws):
        estimator.round = 1000 + draw  # after any round the training used
        rows.append([result.score for result in estimator.evaluate(archs)])
    return np.array(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default='data/toy_cifar10')
    parser.add_argument('--iterations', type=int, default=20, help='shared-training iterations')
    parser.add_argument('--images', type=int, nargs='+', default=[500, 5000])
    parser.add_argument('--archs', type=int, default=12)
    parser.add_argument('--draws', type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = Config.fromfile(TOY_CONFIG)
    space = AutoGANSpace()
    archs = [space.sample(random.Random(100 + i)) for i in range(args.archs)]
    print('| images per reward | IS of the archs | std of one arch over fresh draws | std between '
          'the archs | Kendall tau, two fresh draws (lowest) | tau, fixed set vs fresh mean | seconds |')
    print('|---|---|---|---|---|---|---|')
    for num_images in args.images:
        start = time.time()
        fresh = scores(trained_estimator(config, args.data_root, num_images, 'fresh', args.iterations),
                       archs, args.draws)
        fixed = scores(trained_estimator(config, args.data_root, num_images, 'fixed', args.iterations),
                       archs, 1)[0]
        means = fresh.mean(axis=0)
        taus = [kendalltau(fresh[a], fresh[b])[0] for a, b in itertools.combinations(range(args.draws), 2)]
        print(f'| {num_images} | {means.min():.2f}-{means.max():.2f} | {fresh.std(axis=0, ddof=1).mean():.4f} '
              f'| {means.std(ddof=1):.4f} | {np.mean(taus):+.2f} ({min(taus):+.2f}) '
              f'| {kendalltau(fixed, means)[0]:+.2f} | {time.time() - start:.0f} |', flush=True)


if __name__ == '__main__':
    main()
