"""AutoGAN search benchmarks, measured side by side in one run.

1. The IS reward's images per second (AutoGANEstimator.evaluate: the shared
   generator at search width gf 128 in eval mode, batches of 100, quantised,
   through torch-fidelity's Inception), next to the toy classifier's reward and
   the generator's sampling alone.
2. The reward's share of a search iteration: per stage (8, 16, 32 px), one D
   step of the shared training (with its G step every 5th; gf 128, df 64,
   batch 64, G batch 128) and one reward image, timed interleaved; extrapolated
   to the official iteration (11,730 D steps + 30 rewards of 5,000 images) and
   to the whole search (65 iterations, 10 candidates scored at each stage end),
   and to the toy config's counts when it exists; as a share of the time and,
   independent of the machine's load, of the FLOPs counted by torch.
3. The generator train step (hinge G loss through D, backward, Adam step) of
   an architecture inside the shared generator (path set every step), over the
   same architecture built alone (AutoGANGenerator), same width and batch,
   interleaved. Goal: at most 1.10. Beside the times, what each step computes
   (FLOPs and aten operator calls), which the load of the machine cannot change.
4. The paper's search cost, as the paper reports it.

No Inception weights can be downloaded here, and the weights do not change the
network's speed: unless --inception-weights gives the real file, the Inception
runs with random weights of the right shapes (torch-fidelity's own network,
batch-norm statistics taken from one batch so that activations keep a unit
scale), written to a temporary file and loaded through gan.metrics. Its scores
mean nothing; its time is the real network's.

On cores that other processes share, more than one torch thread makes small
operations wait for descheduled threads; --threads 1 gives steadier seconds.

    python bench/autogan.py [--quick] [--threads 1] [--reps 3] [--g-steps 5]
                            [--inception-weights PATH] [--toy-config PATH]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import timeit
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'bench'))

from machine import describe_machine  # noqa: E402

TOY_CONFIG = REPO / 'configs/autogan/autogan_cifar10_toy.py'
STAGE_PX = (8, 16, 32)
GOAL = 1.10
# Paper (ablation, via a secondary summary; GPU type and count not known): reference sheet 2.2.
PAPER_HOURS = {'with dynamic reset': 43, 'without dynamic reset': 72}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true',
                        help='smoke run (about 10 s on 2 idle cores): tiny batches, one '
                             'repetition; its figures are not measurements')
    parser.add_argument('--reps', type=int, default=None,
                        help='interleaved timed repetitions of the reward and D-step '
                             'measures (default 3)')
    parser.add_argument('--reward-sample', type=int, default=None,
                        help='images per timed reward (default 100, one reward batch)')
    parser.add_argument('--d-steps-per-rep', type=int, default=None,
                        help='D steps per timed repetition, a multiple of 5 '
                             '(default 5: one G step)')
    parser.add_argument('--g-steps', type=int, default=None,
                        help='timed G steps per architecture and variant (default 5)')
    parser.add_argument('--g-batch', type=int, default=None, help='G step batch (default 128)')
    parser.add_argument('--sampled-archs', type=int, default=3,
                        help='sampled architectures besides the three presets in the G-step ratio')
    parser.add_argument('--inception-weights', default=None,
                        help='the real Inception weights file '
                             '(default: random weights of its shapes)')
    parser.add_argument('--toy-config', default=str(TOY_CONFIG),
                        help='search config whose counts give a second share (skipped if missing)')
    parser.add_argument('--threads', type=int, default=None,
                        help="torch threads (default: torch's)")
    # The official search's counts (reference sheet 2.2).
    parser.add_argument('--d-steps', type=int, default=11730, help='D steps per search iteration')
    parser.add_argument('--rewards', type=int, default=30, help='rewards per search iteration')
    parser.add_argument('--reward-images', type=int, default=5000, help='images per reward')
    parser.add_argument('--stage-iterations', type=int, nargs=3, default=[15, 20, 30],
                        help='search iterations at 8, 16 and 32 px')
    parser.add_argument('--candidates', type=int, default=10, help='rewards at each stage end')
    args = parser.parse_args()
    defaults = dict(reps=(1, 3), reward_sample=(2, 100), d_steps_per_rep=(5, 5),
                    g_steps=(1, 5), g_batch=(8, 128))
    for name, (quick, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    # --quick shrinks the D step's batches too (the widths stay the search's).
    args.gan = dict(dis_batch_size=8, gen_batch_size=16) if args.quick else {}
    if args.quick:
        args.sampled_archs = 0
    if args.d_steps_per_rep % 5:
        from nas_tasks.errors import NasError
        raise NasError(f'--d-steps-per-rep must be a multiple of 5 (one G step per 5 D steps), '
                       f'got {args.d_steps_per_rep}')
    return args


# --- timing --------------------------------------------------------------------------

def interleaved(variants: dict[str, Callable[[], object]], reps: int, warmup: int = 1,
                gflop: dict[str, float] | None = None,
                cpu: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Wall seconds of ``reps`` calls of each variant, called A, B, ..., A, B, ... after
    ``warmup`` untimed rounds, so that load from other processes falls on every variant alike.
    With ``gflop``, the first warm-up round counts each variant's GFLOP into it; with
    ``cpu``, the process's CPU seconds of each timed call go there (they count this
    process's work, less touched by other processes than wall time)."""
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for round_index in range(warmup + reps):
        for name, run in variants.items():
            if gflop is not None and round_index == 0 < warmup:
                gflop[name] = gflop_of(run)
                continue
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            if round_index >= warmup:
                seconds[name].append(time.perf_counter() - start)
                if cpu is not None:
                    cpu.setdefault(name, []).append(time.process_time() - start_cpu)
    return seconds


def gflop_of(run: Callable[[], object]) -> float:
    """GFLOP of one call of ``run`` by torch's FlopCounterMode (matrix products and
    convolutions, forward and backward; element-wise work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops() / 1e9


def median(values: list[float]) -> float:
    return statistics.median(values)


def duration(seconds: float) -> str:
    if seconds >= 3600:
        return f'{seconds / 3600:.2f} h'
    return f'{seconds / 60:.1f} min' if seconds >= 60 else f'{seconds:.1f} s'


# --- extractors with weights of the right shapes -------------------------------------

def random_inception_weights(path: Path) -> Path:
    """A state dict of torch-fidelity's inception-v3-compat with random weights, at ``path``.

    torch-fidelity's class loads weights in its constructor; a subclass that skips
    the load gives the network with PyTorch's initial weights. Its batch-norm
    statistics are then those of one batch of random images, as a trained
    network's normalise its activations (default statistics let activations
    shrink layer by layer towards denormal floats, which would be slower).
    """
    import torch
    from torch import nn
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class InceptionOfInitialWeights(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):
            return None  # keep the initial weights

    empty = path.with_name('empty.pth')
    torch.save({}, empty)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        network = InceptionOfInitialWeights('inception-v3-compat', ['logits_unbiased'],
                                            feature_extractor_weights_path=str(empty))
        for module in network.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None  # the batch's own statistics
        network.train()
        with torch.no_grad():
            network(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8))
    torch.save(network.state_dict(), path)
    return path


def random_toy_classifier_weights(path: Path, num_classes: int = 10, width: int = 32) -> Path:
    """A random ToyClassifier's weights (its speed does not depend on training)."""
    import torch
    from gan.metrics import ToyClassifier
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.save(ToyClassifier(num_classes, width).state_dict(), path)
    return path


def extractor_config(cfg: dict, tmp: Path, inception_weights: str | None) -> tuple[dict, str]:
    """``cfg`` with a weights file that exists, and how the weights were chosen."""
    cfg = dict(cfg)
    if cfg['type'] == 'InceptionV3Compat':
        if inception_weights:
            cfg['weights_path'] = inception_weights
            return cfg, ('Inception (torch-fidelity inception-v3-compat), '
                         f'weights {inception_weights}')
        cfg['weights_path'] = str(random_inception_weights(tmp / 'random_inception.pth'))
        return cfg, 'Inception (torch-fidelity inception-v3-compat), RANDOM weights of its shapes'
    if cfg['type'] == 'ToyClassifier':
        cfg['weights_path'] = str(random_toy_classifier_weights(
            tmp / f'random_toy_{cfg.get("num_classes", 10)}_{cfg.get("width", 32)}.pth',
            cfg.get('num_classes', 10), cfg.get('width', 32)))
        return cfg, 'toy classifier (gan.metrics.ToyClassifier), random weights'
    from nas_tasks.errors import NasError
    raise NasError(f"bench/autogan.py knows the extractors InceptionV3Compat and ToyClassifier, "
                   f"got {cfg['type']!r}")


# --- the estimator at search settings ------------------------------------------------

def random_real_data(image_size: int, batch_size: int, seed: int):
    """Endless real-looking batches in [-1, 1]: the D step's cost does not depend on content."""
    import torch
    generator = torch.Generator().manual_seed(seed)
    while True:
        yield torch.rand(batch_size, 3, image_size, image_size, generator=generator) * 2 - 1


def build_estimator(gan: dict, extractor: dict, reward_images: int, d_steps: int):
    """An AutoGANEstimator whose ``train_during_search(0, ...)`` runs ``d_steps`` D steps and
    whose reward takes ``reward_images`` images in batches of (at most) 100."""
    from gan.autogan.estimator import AutoGANEstimator
    from gan.autogan.space import AutoGANSpace
    # A dynamic reset must not cut a timed call short (the toy config's window is 20 G
    # steps); the window's length does not change what a step costs.
    gan = {**gan, 'reset_window': 10 ** 6}
    return AutoGANEstimator(
        AutoGANSpace(), seed=0, gan=gan, rounds_per_iteration=1, shared_d_steps=d_steps,
        real_data=random_real_data,
        reward=dict(num_images=reward_images, splits=min(10, reward_images),
                    batch_size=min(100, reward_images), extractor=extractor))


def stage_sampler(space, stage: int, seed: int) -> Callable[[], dict]:
    """Draws of stage-``stage`` paths, one per minibatch, as the controller's."""
    rng = random.Random(seed)
    return lambda: space.prefix(space.sample(rng), stage)


def generator_sampling(estimator, arch: dict, num_images: int) -> Callable[[], None]:
    """The reward's generator part alone: ``num_images`` quantised images in eval mode."""
    import torch
    from gan.metrics import generated_batches
    generator = estimator.trainer.generator
    latent_dim = estimator.trainer.settings.latent_dim

    def run():
        generator.set_arch(arch)
        generator.eval()
        try:
            for _ in generated_batches(lambda n: generator(torch.randn(n, latent_dim)),
                                       num_images, min(100, num_images)):
                pass
        finally:
            generator.train()
    return run


@dataclass
class StageCosts:
    """Per stage, of one D step (with its G-step share) and of one reward image per
    reward variant: median seconds, and GFLOP (as :func:`gflop_of` counts them)."""
    d_step: list[float]
    d_step_gflop: list[float]
    reward_image: dict[str, list[float]]
    reward_image_gflop: dict[str, list[float]]
    generator_image: list[float]  # seconds of one image of the generator alone


def measure_stage_costs(main, rewards: dict, reward_arch: dict, d_steps_per_rep: int,
                        reward_sample: int, reps: int, with_generator: bool = True) -> StageCosts:
    """Per stage, interleaved: ``main``'s D steps, each estimator of ``rewards`` scoring the
    stage-``s`` prefix of ``reward_arch``, and (``with_generator``) the generator alone."""
    from nas_tasks.strategies.base import SearchPosition
    space = main.space
    costs = StageCosts([], [], {name: [] for name in rewards}, {name: [] for name in rewards}, [])
    for stage in range(space.num_stages):
        prefix = space.prefix(reward_arch, stage)
        # Step 0 of a stage is the start of a search iteration: it trains.
        variants = {'d_steps': lambda s=stage: main.train_during_search(
            SearchPosition(round=0, stage=s, step=0), stage_sampler(space, s, seed=s))}
        for name, estimator in rewards.items():
            variants[name] = lambda e=estimator, p=prefix: e.evaluate([p])
        if with_generator:
            variants['generator'] = generator_sampling(main, prefix, reward_sample)
        gflop: dict[str, float] = {}
        seconds = interleaved(variants, reps, gflop=gflop)
        costs.d_step.append(median(seconds['d_steps']) / d_steps_per_rep)
        costs.d_step_gflop.append(gflop['d_steps'] / d_steps_per_rep)
        for name in rewards:
            costs.reward_image[name].append(median(seconds[name]) / reward_sample)
            costs.reward_image_gflop[name].append(gflop[name] / reward_sample)
        if with_generator:
            costs.generator_image.append(median(seconds['generator']) / reward_sample)
    return costs


@dataclass
class SearchCounts:
    """How much of each a search does (official: reference sheet 2.2)."""
    label: str
    d_steps: int  # per iteration
    rewards: int  # per iteration
    reward_images: int
    stage_iterations: list[int]
    candidates: int  # rewards at each stage end


def report_shares(counts: SearchCounts, costs: StageCosts, reward: str) -> None:
    """The reward's share of an iteration at each stage and of the whole search, in time
    (extrapolated from the measured seconds) and in counted FLOPs (independent of load)."""
    print(f'{counts.label}: {counts.d_steps} D steps + {counts.rewards} rewards of '
          f'{counts.reward_images} images per iteration; iterations per stage '
          f'{counts.stage_iterations}, {counts.candidates} candidates at each stage end')
    totals = {'s': [0.0, 0.0], 'gflop': [0.0, 0.0]}  # [training, rewards]
    for stage, iterations in enumerate(counts.stage_iterations):
        shares = {}
        per_unit = (('s', costs.d_step, costs.reward_image[reward]),
                    ('gflop', costs.d_step_gflop, costs.reward_image_gflop[reward]))
        for unit, d_step, image in per_unit:
            train = counts.d_steps * d_step[stage]
            one_reward = counts.reward_images * image[stage]
            shares[unit] = counts.rewards * one_reward / (train + counts.rewards * one_reward)
            totals[unit][0] += iterations * train
            totals[unit][1] += (iterations * counts.rewards + counts.candidates) * one_reward
            if unit == 's':
                spent = (duration(train), duration(counts.rewards * one_reward))
        print(f'  stage {stage} ({STAGE_PX[stage]:>2} px): D steps {spent[0]:>9} + rewards '
              f'{spent[1]:>9} per iteration; reward share {100 * shares["s"]:5.1f}% of the '
              f'time, {100 * shares["gflop"]:5.1f}% of the FLOPs')
    num_rewards = (sum(counts.stage_iterations) * counts.rewards
                   + len(counts.stage_iterations) * counts.candidates)
    seconds, gflop = (totals[unit] for unit in ('s', 'gflop'))
    print(f'  whole search: {sum(counts.stage_iterations)} iterations, {num_rewards} rewards; '
          f'{duration(sum(seconds))} on this machine (extrapolated; controller left out); '
          f'reward share {100 * seconds[1] / sum(seconds):.1f}% of the time, '
          f'{100 * gflop[1] / sum(gflop):.1f}% of the FLOPs')


def bench_reward_and_share(args, tmp: Path) -> None:
    from gan.autogan.space import PRESETS
    inception, inception_label = extractor_config(dict(type='InceptionV3Compat'), tmp,
                                                  args.inception_weights)
    toy, toy_label = extractor_config(dict(type='ToyClassifier'), tmp, None)
    official = build_estimator(args.gan, inception, args.reward_sample, args.d_steps_per_rep)
    toy_reward = build_estimator(args.gan, toy, args.reward_sample, args.d_steps_per_rep)
    settings = official.trainer.settings
    print('\n== 1+2. IS reward and its share of a search iteration (official search settings)')
    print(f'shared GAN: gf {settings.gf_dim}, df {settings.df_dim}, D batch '
          f'{settings.dis_batch_size}, G batch {settings.gen_batch_size}; reward arch: '
          f'autogan_cifar10_a (its stage prefix), batches of {min(100, args.reward_sample)}')
    print(f'reward extractors: {inception_label}; {toy_label}')
    print(f'timed: per stage, {args.reps} interleaved repetitions (after one warm-up) of '
          f'{args.d_steps_per_rep} D steps, a reward of {args.reward_sample} images with each '
          f'extractor, and the generator sampling {args.reward_sample} images alone; medians')
    costs = measure_stage_costs(official, dict(inception=official, toy=toy_reward),
                                PRESETS['autogan_cifar10_a'], args.d_steps_per_rep,
                                args.reward_sample, args.reps)
    print(f'{"stage":>9} {"D step ms":>10} {"GFLOP":>7} {"Inception reward img/s":>23} '
          f'{"GFLOP/img":>10} {"toy reward img/s":>17} {"generator img/s":>16}')
    for stage in range(len(STAGE_PX)):
        print(f'{stage:>3} {STAGE_PX[stage]:>2} px {1000 * costs.d_step[stage]:>10.1f} '
              f'{costs.d_step_gflop[stage]:>7.1f} '
              f'{1 / costs.reward_image["inception"][stage]:>23.2f} '
              f'{costs.reward_image_gflop["inception"][stage]:>10.2f} '
              f'{1 / costs.reward_image["toy"][stage]:>17.1f} '
              f'{1 / costs.generator_image[stage]:>16.1f}')
    per_reward = args.reward_images * costs.reward_image['inception'][2]
    print(f'IS reward at 32 px: {1 / costs.reward_image["inception"][2]:.2f} images/s, so one '
          f'reward of {args.reward_images} images takes {per_reward / 60:.1f} min here '
          f'(extrapolated from {args.reward_sample} images)')
    print('shares extrapolated from these per-step and per-image costs:')
    report_shares(SearchCounts('official search', args.d_steps, args.rewards, args.reward_images,
                               list(args.stage_iterations), args.candidates),
                  costs, 'inception')
    bench_toy_config_share(args, tmp)


def bench_toy_config_share(args, tmp: Path) -> None:
    """The share at the toy config's widths, extractor and counts, when the config exists."""
    if not Path(args.toy_config).is_file():
        print(f'toy config: {args.toy_config} does not exist yet; no toy share')
        return
    from gan.autogan.space import PRESETS
    from nas_tasks.builder import load_config
    cfg = load_config(args.toy_config)
    estimator_cfg, strategy_cfg = cfg.estimator, cfg.strategy
    reward = estimator_cfg.get('reward', {})
    extractor, label = extractor_config(reward.get('extractor', dict(type='InceptionV3Compat')),
                                        tmp, args.inception_weights)
    images = reward.get('num_images', 5000)
    rounds = estimator_cfg.get('rounds_per_iteration', 30)
    per_round = strategy_cfg.get('controller', {}).get('batch_size', 1)
    stage_steps = strategy_cfg.get('stage_steps', (15 * rounds, 20 * rounds, 30 * rounds))
    counts = SearchCounts(f'toy config {Path(args.toy_config).name}',
                          estimator_cfg.get('shared_d_steps', 11730), rounds * per_round, images,
                          [steps // rounds for steps in stage_steps],
                          strategy_cfg.get('num_candidates', 10))
    sample = min(images, args.reward_sample)
    estimator = build_estimator(dict(estimator_cfg.get('gan', {})), extractor, sample,
                                args.d_steps_per_rep)
    settings = estimator.trainer.settings
    print(f'toy config settings: gf {settings.gf_dim}, df {settings.df_dim}, D batch '
          f'{settings.dis_batch_size}, G batch {settings.gen_batch_size}; reward by {label}')
    costs = measure_stage_costs(estimator, dict(reward=estimator), PRESETS['autogan_cifar10_a'],
                                args.d_steps_per_rep, sample, args.reps, with_generator=False)
    report_shares(counts, costs, 'reward')


# --- shared vs standalone generator step ----------------------------------------------

def g_train_step(generator, discriminator, optimizer, z) -> None:
    """One G step as SharedGANTrainer._g_step takes it: hinge G loss through D, backward, Adam."""
    from gan.autogan.shared_training import hinge_g_loss
    optimizer.zero_grad()
    hinge_g_loss(discriminator(generator(z))).backward()
    optimizer.step()


def work_of(step: Callable[[], None]) -> tuple[float, int]:
    """GFLOP (torch's FlopCounterMode) and aten operator calls of one call of ``step``:
    what it computes, whatever the load of the machine."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    class OperatorCount(TorchDispatchMode):
        calls = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.calls += 1
            return func(*args, **(kwargs or {}))

    with FlopCounterMode(display=False) as flops:
        step()
    with OperatorCount() as operators:
        step()
    return flops.get_total_flops() / 1e9, operators.calls


def bench_g_step_ratio(args) -> None:
    import torch
    from gan.autogan.discriminator import AutoGANDiscriminator
    from gan.autogan.generator import AutoGANGenerator
    from gan.autogan.shared_generator import AutoGANSharedGenerator
    from gan.autogan.shared_training import SharedGANSettings, init_weights
    from gan.autogan.space import PRESETS, AutoGANSpace

    s = SharedGANSettings()
    space = AutoGANSpace()
    rng = random.Random(0)
    archs = {'autogan_cifar10_a': PRESETS['autogan_cifar10_a']} if args.quick else dict(PRESETS)
    for index in range(args.sampled_archs):
        archs[f'sampled {index}'] = space.sample(rng)
    torch.manual_seed(0)
    shared = AutoGANSharedGenerator(s.gf_dim, s.latent_dim, s.bottom_width)
    discriminator = AutoGANDiscriminator(s.df_dim)  # at stage 2, 32 px
    init_weights(shared)
    init_weights(discriminator)
    shared_optimizer = torch.optim.Adam(shared.parameters(), lr=s.lr, betas=s.betas)
    z = torch.randn(args.g_batch, s.latent_dim)
    warmup = 1 if args.quick else 2
    print('\n== 3. G train step, shared generator (path set every step) / standalone '
          'AutoGANGenerator of the same arch')
    print(f'gf {s.gf_dim}, df {s.df_dim}, batch {args.g_batch}, 32 px (whole archs); hinge G loss '
          f'through D, backward, Adam step; {args.g_steps} interleaved steps per variant after '
          f'{warmup} warm-up round(s); medians')
    print(f'{"arch":<18} {"shared ms":>10} {"standalone ms":>14} {"ratio":>6} '
          f'{"CPU-time ratio":>15} {"GFLOP shared/standalone":>24} {"aten ops":>10}  '
          'official vector')
    ratios, cpu_ratios = [], []
    for name, arch in archs.items():
        standalone = AutoGANGenerator(arch, s.gf_dim, s.latent_dim, s.bottom_width)
        standalone.load_state_dict(shared.subnet_state_dict(arch))  # the same numbers flow
        standalone_optimizer = torch.optim.Adam(standalone.parameters(), lr=s.lr, betas=s.betas)

        def shared_step():
            shared.set_arch(arch)
            g_train_step(shared, discriminator, shared_optimizer, z)

        def standalone_step():
            g_train_step(standalone, discriminator, standalone_optimizer, z)

        cpu: dict[str, list[float]] = {}
        seconds = interleaved(dict(shared=shared_step, standalone=standalone_step),
                              args.g_steps, warmup=warmup, cpu=cpu)
        ratio = median(seconds['shared']) / median(seconds['standalone'])
        ratios.append(ratio)
        cpu_ratios.append(median(cpu['shared']) / median(cpu['standalone']))
        shared_gflop, shared_ops = work_of(shared_step)
        alone_gflop, alone_ops = work_of(standalone_step)
        print(f'{name:<18} {1000 * median(seconds["shared"]):>10.1f} '
              f'{1000 * median(seconds["standalone"]):>14.1f} {ratio:>6.3f} '
              f'{cpu_ratios[-1]:>15.3f} '
              f'{f"{shared_gflop:.2f}/{alone_gflop:.2f}":>24} {f"{shared_ops}/{alone_ops}":>10}  '
              f'{" ".join(map(str, space.to_vector(arch)))}')
    calls = 1000
    set_arch_seconds = timeit.timeit(lambda: shared.set_arch(archs['autogan_cifar10_a']),
                                     number=calls)
    print(f'setting a path (set_arch with a whole arch, which validates it): '
          f'{1e6 * set_arch_seconds / calls:.0f} us per call')
    print(f'median ratio over {len(ratios)} archs: {median(ratios):.3f} (goal <= {GOAL:.2f}); '
          f'range {min(ratios):.3f} to {max(ratios):.3f}; CPU-time ratio: median '
          f'{median(cpu_ratios):.3f}, range {min(cpu_ratios):.3f} to {max(cpu_ratios):.3f}')


def report_paper_cost(args) -> None:
    rewards = sum(args.stage_iterations) * args.rewards + 3 * args.candidates
    print('\n== 4. Search cost reported by the paper (not measured here)')
    print('paper, via a secondary summary (GPU type and count not known): ' + ', '.join(
        f'about {hours} h {how}' for how, hours in PAPER_HOURS.items()))
    print(f'reward volume of the official search: {sum(args.stage_iterations)} x {args.rewards} + '
          f'3 x {args.candidates} = {rewards} IS evaluations x {args.reward_images} images = '
          f'{rewards * args.reward_images / 1e6:.1f} M images through Inception')


def load_average() -> str:
    return ', '.join(f'{load:.1f}' for load in os.getloadavg()) + ' (1, 5, 15 min)'


def main():
    args = parse_args()
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    print(describe_machine())
    # Other processes on the cores inflate the seconds; interleaving spreads that over both
    # sides of a ratio, and the load tells how much there was.
    print(f'load average at the start: {load_average()}')
    if os.getloadavg()[0] > os.cpu_count() / 2 and torch.get_num_threads() > 1:
        print('note: other processes are using the cores. With more than one torch thread, '
              'an operation waits for its descheduled threads, which slows small operations '
              'many times over; ratios of interleaved variants stay comparable, and '
              '--threads 1 gives steadier seconds')
    if args.quick:
        print('--quick: a smoke run; its figures are not measurements')
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        bench_reward_and_share(args, Path(tmp))
    bench_g_step_ratio(args)
    report_paper_cost(args)
    print(f'\nload average at the end: {load_average()}; the run took '
          f'{duration(time.perf_counter() - start)}')


if __name__ == '__main__':
    from nas_tasks.cli import run_cli
    run_cli(main)
