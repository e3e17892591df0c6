"""The AutoGAN search's estimator: a shared GAN trained while the controller searches.

Each *search iteration* is ``rounds_per_iteration`` controller steps (30 in
the official search) of a stage. Before its first step the shared GAN trains
for ``shared_d_steps`` D steps (the official 15 epochs), one architecture
drawn by ``sample_arch()`` per minibatch, on real images at the drawn
architecture's stage resolution (8, 16 or 32 px). The round that grows a
multi-level search to its next stage is no controller step and trains
nothing, so, as in the official search, a new stage's first iteration trains
its new cell before the controller's first step. The reward of an
architecture is the Inception Score of the shared generator on that path.

When the dynamic reset fires, the rest of the iteration's training is skipped,
the controller steps of the iteration still run on the collapsed GAN, and G, D
and their optimisers are re-created right after them (reference sheet 2.5):
before the next iteration trains or, when the iteration was a stage's last,
before the stage's grow (or final) candidates are scored, as the official
search scores them on the freshly reset generator.

The reward's latent vectors are drawn afresh for every reward by default
(``reward.noise='fresh'``, the official ``get_is``), from a seed of the search's
seed, the round and the architecture, so a resumed or distributed search draws
the same ones; ``reward.noise='fixed'`` scores every architecture on one set.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import torch
from mmengine.logging import MMLogger

from gan.autogan.distributed import inception_score_over_ranks
from gan.autogan.pictures import draw_generator, save_sample_grid
from gan.autogan.real_data import EXAMPLE, RealData, build_real_data
from gan.autogan.shared_training import SharedGANSettings, SharedGANTrainer
from gan.autogan.space import AutoGANSpace
from gan.metrics import InceptionScore, build_feature_extractor
from nas_tasks import dist
from nas_tasks.errors import NasError
from nas_tasks.estimators.base import Estimator
from nas_tasks.io import atomic_torch_save
from nas_tasks.registry import ESTIMATORS
from nas_tasks.result import Result
from nas_tasks.seeding import seed_for
from nas_tasks.space import Arch
from nas_tasks.validation import check_int
from nas_tasks.strategies.base import SearchPosition

GENERATOR_FILE = 'best_generator.pth'
SAMPLES_FILE = 'best_samples.png'
PICTURE_FILE = 'best_generator.png'
NUM_GRID_SAMPLES = 64

DEFAULT_REWARD = dict(num_images=5000, splits=10, batch_size=100, noise='fresh',
                      extractor=dict(type='InceptionV3Compat', weights_path=None))
# Where a reward's latent vectors come from: new ones for every reward (the official
# code), or one set for every architecture (lower noise, but every reward then ranks
# the architectures on the same 5,000 points).
REWARD_NOISES = ('fresh', 'fixed')


def gan_settings(gan: dict | None, seed: int) -> SharedGANSettings:
    settings = dict(gan or {})
    if 'betas' in settings:
        settings['betas'] = tuple(settings['betas'])  # a config may give a list
    return SharedGANSettings(**settings, seed=seed)


class PathSampler:
    """Images of a generator's selected path from a seeded noise stream: ``sample(n)``
    generates the stream's next n. Its halves, ``noise(n)`` and ``generate(z)``, let a
    rank draw and skip the noise of the images that other ranks generate."""

    def __init__(self, generator: torch.nn.Module, latent_dim: int, device: torch.device, seed: int):
        self.generator = generator
        self.latent_dim = latent_dim
        self.device = device
        self.rng = torch.Generator().manual_seed(seed)

    def noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=self.rng)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.generator(z.to(self.device))

    def __call__(self, n: int) -> torch.Tensor:
        return self.generate(self.noise(n))


@ESTIMATORS.register_module()
class AutoGANEstimator(Estimator):
    """The shared GAN of the AutoGAN search, scored by the Inception Score of each path.

    Args:
        space: the :class:`AutoGANSpace` being searched.
        config: the search config (unused; every setting is an argument).
        seed: seeds the shared weights, the real-data order and the reward's noise.
        gan: :class:`SharedGANSettings` fields (``gf_dim``, ``df_dim``, ``lr``, ...).
        rounds_per_iteration: loop rounds (controller steps) per search iteration.
        shared_d_steps: D steps of shared training per iteration (official:
            15 epochs of CIFAR-10 at batch 64, 11,730).
        real_data: the real images, a dataset config as the final training's
            (``dict(type='GANImages', source='cifar10', data_root=..., img_size=32)``,
            served by :class:`~gan.autogan.real_data.RealImageBatches`, each rank
            loading its slice of every batch), or a callable ``(image_size,
            batch_size, seed) -> iterator of whole batches in [-1, 1]``.
        real_data_workers: the real-data loader's worker processes (per rank).
        reward: ``num_images``, ``splits`` and ``batch_size`` of the IS, the
            ``extractor`` config of ``gan.metrics.GAN_FEATURE_EXTRACTORS``, and
            ``noise``: ``'fresh'`` latent vectors for every reward (official) or
            one ``'fixed'`` set for all.
        device: where the GAN and the extractor run; by default this process's
            GPU when there is one, else the CPU.
    """

    scores_stay_valid = False

    def __init__(self, space: AutoGANSpace, config=None, seed: int = 0, gan: dict | None = None,
                 rounds_per_iteration: int = 30, shared_d_steps: int = 11730,
                 real_data: dict | RealData | None = None, real_data_workers: int = 0,
                 reward: dict | None = None, device: str | None = None):
        if real_data is None:
            raise NasError(f'AutoGANEstimator needs real_data, a dataset config: {EXAMPLE}')
        check_int('estimator.real_data_workers', real_data_workers, minimum=0)
        device = device or dist.device()
        self.space = space
        self.seed = seed
        self.rounds_per_iteration = rounds_per_iteration
        self.shared_d_steps = shared_d_steps
        # The extractor first: missing Inception weights stop the search before
        # anything is read or trained.
        reward = {**DEFAULT_REWARD, **(reward or {})}
        if reward['noise'] not in REWARD_NOISES:
            raise NasError(f"estimator.reward.noise must be one of {', '.join(map(repr, REWARD_NOISES))}, "
                           f"got {reward['noise']!r}")
        self.fresh_reward_noise = reward['noise'] == 'fresh'
        self.fixed_noise_seed = seed_for(seed, 'reward-noise')  # the fixed set, and the sample grid's
        extractor = build_feature_extractor(reward['extractor'], device)
        self.inception_score = InceptionScore(extractor, reward['num_images'],
                                              reward['batch_size'], reward['splits'])
        # The trainer first: it checks that the batches split over the ranks.
        self.trainer = SharedGANTrainer(gan_settings(gan, seed), space, device)
        self.real_data = build_real_data(real_data, real_data_workers,
                                         pin_memory=torch.device(device).type == 'cuda')
        self.reset_pending = False
        self.resets: list[SearchPosition] = []  # where every reset happened, for the plots
        self.round = 0  # the loop's round being scored: fresh reward noise depends on it
        # Under torchrun every rank scores every candidate, generating its share of the images.
        self.evaluates_collectively = dist.get_world_size() > 1

    # -- training ---------------------------------------------------------------------

    def train_during_search(self, position: SearchPosition, sample_arch: Callable[[], Arch]) -> None:
        self.round = position.round
        iteration_starts = position.step is not None and position.step % self.rounds_per_iteration == 0
        stage_ends = position.step is None  # a grow round: the stage's candidates are scored
        if self.reset_pending and (iteration_starts or stage_ends):
            self._reset(position)
        if not iteration_starts:
            return
        iteration = f'{position.stage}-{position.step // self.rounds_per_iteration}'
        report = self.trainer.train_steps(self.shared_d_steps, self._real_batches(iteration),
                                          sample_arch)
        if report.reset_needed:
            # The official search still trains the controller on the collapsed GAN this
            # iteration and re-creates G and D only after that, before anything else.
            self.reset_pending = True
            _log(f'round {position.round}: the shared GAN collapsed after '
                 f'{report.d_steps} D steps; it is reset after this iteration\'s controller steps')

    def _real_batches(self, iteration: str) -> Iterator[torch.Tensor]:
        """This rank's slices of the batches, at the resolution of the arch drawn for each step."""
        batches_by_size: dict[int, Iterator[torch.Tensor]] = {}
        batch_size = self.trainer.settings.dis_batch_size
        while True:
            size = self.trainer.image_size()  # set by the trainer before it takes a batch
            if size not in batches_by_size:
                batches_by_size[size] = self.real_data(
                    size, batch_size, seed_for(self.seed, f'real-data-{iteration}-{size}'))
            yield next(batches_by_size[size])

    def _reset(self, position: SearchPosition) -> None:
        self.trainer.reset()
        self.reset_pending = False
        self.resets.append(position)
        _log(f'round {position.round} (stage {position.stage}, controller step '
                         f'{position.step}): dynamic reset of the shared G, D and optimisers')

    def plot_marks(self) -> list[tuple[str, SearchPosition]]:
        return [('dynamic reset', position) for position in self.resets]

    # -- scoring ----------------------------------------------------------------------

    def evaluate(self, archs: list[Arch]) -> list[Result]:
        return [self._score(arch) for arch in archs]

    def _score(self, arch: Arch) -> Result:
        if self.evaluates_collectively:
            mean, std = self._with_path(
                arch, lambda sample: inception_score_over_ranks(self.inception_score, sample))
        else:
            mean, std = self._with_path(arch, self.inception_score)
        return Result(score=float(mean), metrics={'is_std': float(std)})

    def _reward_noise_seed(self, arch: Arch) -> int:
        if not self.fresh_reward_noise:
            return self.fixed_noise_seed
        # New noise for every reward, the same on every rank and after a resume.
        return seed_for(self.seed, f'reward-noise-{self.round}-{self.space.canonical(arch)}')

    def _with_path(self, arch: Arch, use: Callable[[PathSampler], object], noise_seed: int | None = None):
        """``use(sample)``, where ``sample(n)`` generates n images on the path of ``arch``
        in eval mode (BN on running statistics, as the official reward), from the
        reward's noise of ``arch`` unless ``noise_seed`` is given."""
        generator = self.trainer.generator
        generator.set_arch(arch)
        if noise_seed is None:
            noise_seed = self._reward_noise_seed(arch)
        sample = PathSampler(generator, self.trainer.settings.latent_dim, self.trainer.device,
                             noise_seed)
        generator.eval()
        try:
            return use(sample)
        finally:
            generator.train()

    # -- results and state ------------------------------------------------------------

    def export(self, arch: Arch, work_dir: Path) -> list[Path]:
        """The standalone generator weights of ``arch`` (for ``AutoGANGenerator(arch,
        gf_dim)``), a grid of its samples and a picture of its cells."""
        weights_path, samples_path, picture_path = (
            Path(work_dir) / name for name in (GENERATOR_FILE, SAMPLES_FILE, PICTURE_FILE))
        weights = {name: tensor.detach().cpu().clone() for name, tensor
                   in self.trainer.generator.subnet_state_dict(arch).items()}
        atomic_torch_save(weights, weights_path)
        self._with_path(arch, lambda sample: save_sample_grid(sample(NUM_GRID_SAMPLES), samples_path),
                        noise_seed=self.fixed_noise_seed)
        vector = ' '.join(map(str, self.space.to_vector(arch)))
        draw_generator(arch, picture_path, title=f'found generator (official vector: {vector})')
        return [weights_path, samples_path, picture_path]

    def state_dict(self) -> dict:
        # Every random draw comes from the trainer's generator (in its state) or from
        # seeds fixed by ``seed`` and the iteration, so no other RNG state is needed.
        return {'trainer': self.trainer.state_dict(), 'reset_pending': self.reset_pending,
                'resets': [list(position) for position in self.resets], 'round': self.round}

    def load_state_dict(self, state: dict) -> None:
        self.trainer.load_state_dict(state['trainer'])
        self.reset_pending = bool(state['reset_pending'])
        self.resets = [SearchPosition(*position) for position in state['resets']]
        self.round = int(state.get('round', 0))  # absent from checkpoints before fresh reward noise


def _log(message: str) -> None:
    # The search's logger (writing search.log) opens after the estimator is built,
    # so it is looked up at each message.
    MMLogger.get_current_instance().info(message)
