"""AutoGAN's standalone recipe for ``tools/diagnose.py`` (the ranking and the random baseline).

AutoGAN's search is sample-based: the diagnosis draws random generators from
its ``search_space`` itself. :class:`AutoGANStandaloneTraining` trains one
generator the way a found one is trained, with the final-training recipe
(:class:`~gan.autogan.final_training.AutoGANTrainingModel` through an
mmengine Runner, ``autogan_cifar10_train_toy.py`` on the toy data), every
architecture for the same number of iterations, and scores its EMA generator
as the search rewarded a path: the Inception Score (and, in the metrics, the
FID) of ``estimator.reward.num_images`` images through the reward's
extractor. Named in an AutoGAN search config's ``diagnose`` section:

    diagnose = dict(standalone=dict(type='AutoGANStandaloneTraining',
                                    train_config='configs/autogan/autogan_cifar10_train_toy.py'))
"""
from __future__ import annotations

import copy
from pathlib import Path

from mmengine.config import Config

from gan.autogan.estimator import DEFAULT_REWARD
from gan.autogan.space import AutoGANSpace
from nas_tasks.builder import load_config
from nas_tasks.diagnostics import STANDALONE_RECIPES, StandaloneRecipe
from nas_tasks.dist import process_local
from nas_tasks.errors import NasError
from nas_tasks.result import Result
from nas_tasks.seeding import seed_for
from nas_tasks.standalone_training import delete_checkpoints, standalone_runner, standalone_runner_config, train

# The training validates nothing: the recipe scores the trained generator once, at the end.
NEVER = 2 ** 31 - 1


@STANDALONE_RECIPES.register_module()
class AutoGANStandaloneTraining(StandaloneRecipe):
    """One generator trained from scratch by the final-training recipe, scored by IS.

    The model (generator width, discriminator, EMA, n_critic) and the schedule
    are ``train_config``'s (a final-training config), with ``cfg_options``
    merged in; the candidate's arch goes into ``model.generator.arch``. The
    data and the score are the search's: the real images are its
    ``estimator.real_data``, the IS and FID are computed on
    ``estimator.reward.num_images`` fixed latent vectors (the config's
    evaluation noise) by its reward extractor with its splits, once, after the
    last iteration. The score is the IS (higher is better, as the search's
    reward); ``FID`` and ``IS_std`` are in the metrics.

    Each generator trains with ``seed_for(seed, arch)``; its Runner keeps the
    config's checkpoint hook in the candidate's folder and resumes from its
    last checkpoint after a kill.

    Args:
        config, space, seed: the search config, its space and the diagnosis seed.
        train_config: path of the final-training config.
        cfg_options: a (nested) dict merged into it (e.g. fewer epochs).
        log_level: of each training's Runner log (console and file).
        keep_checkpoints: keep each training's checkpoints once it is scored.
    """

    score_name = 'IS'

    def __init__(self, config: Config, space: AutoGANSpace, seed: int, train_config: str,
                 cfg_options: dict | None = None, log_level: str = 'WARNING',
                 keep_checkpoints: bool = False):
        estimator = config.get('estimator', {})
        real_data = estimator.get('real_data')
        if not isinstance(real_data, dict) or 'type' not in real_data:
            raise NasError("AutoGAN's standalone training reads the search's real images from "
                           'estimator.real_data, a dataset config; this search config gives '
                           f'{real_data!r}')
        reward = {**DEFAULT_REWARD, **estimator.get('reward', {})}
        self.space = space
        self.seed = seed
        self.log_level = log_level
        self.keep_checkpoints = keep_checkpoints
        cfg = load_config(train_config)
        cfg.merge_from_dict(copy.deepcopy(dict(cfg_options or {})))  # merging consumes _delete_ keys
        if 'arch' not in cfg.get('model', {}).get('generator', {}):
            raise NasError(f"{train_config}: diagnose.standalone.train_config must be an AutoGAN "
                           "final-training config (model.generator=dict(type='AutoGANGenerator', "
                           'arch=...))')
        cfg.train_dataloader.dataset = copy.deepcopy(real_data)
        cfg.val_dataloader.dataset.num_images = int(reward['num_images'])
        cfg.val_evaluator.update(extractor=copy.deepcopy(reward['extractor']),
                                 real_data=copy.deepcopy(real_data), splits=int(reward['splits']),
                                 batch_size=int(reward['batch_size']))
        cfg.train_cfg.val_begin = NEVER
        self.train_cfg = cfg

    def train_and_score(self, arch: dict, run_dir: Path) -> Result:
        self.space.validate(arch)
        run_dir = Path(run_dir)
        seed = seed_for(self.seed, self.space.canonical(arch))
        cfg = standalone_runner_config(self.train_cfg, run_dir, seed, self.log_level,
                                       left_out=('test_dataloader', 'test_cfg', 'test_evaluator'))
        cfg.model.generator.arch = self.space.to_document(arch)
        with process_local():  # each rank trains its own candidates
            with standalone_runner(cfg, seed) as runner:
                train_loss = train(runner)
                metrics = {key: float(value) for key, value in runner.val().items()}
        if not self.keep_checkpoints:
            delete_checkpoints(run_dir)
        if train_loss is not None:
            metrics['train_loss'] = train_loss
        return Result(score=metrics['IS'], metrics=metrics)
