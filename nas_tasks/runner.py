"""Building an mmengine Runner for training or testing a found model (tools/train.py, test.py)."""
from __future__ import annotations

import math
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from nas_tasks import dist
from nas_tasks.builder import load_config
from nas_tasks.checkpoint import WeightsOnlyCheckpointHook
from nas_tasks.config_checks import check_checkpoint_paths, check_num_classes, is_search_config
from nas_tasks.data_paths import check_dataset_paths
from nas_tasks.errors import NasError
from nas_tasks.modules import register_all_modules


def build_runner(config_path: str, work_dir: str | None, launcher: str, cfg_options: dict,
                 **overrides) -> Runner:
    """An mmdet-style Runner for ``config_path``, on 1 process or under torchrun.

    ``overrides`` are set on the config (e.g. ``load_from``, ``resume``).
    """
    cfg: Config = load_config(config_path, cfg_options)
    register_all_modules()
    dist.init_distributed(launcher)
    if is_search_config(cfg):
        raise NasError(f'{config_path} is a search config; run it with tools/search.py, and '
                       'fine-tune the result with a fine-tuning config')
    cfg.work_dir = work_dir or cfg.get('work_dir') or str(Path('work_dirs') / Path(config_path).stem)
    cfg.launcher = 'pytorch' if dist.is_distributed() else 'none'
    if dist.is_distributed():
        # A config's own wrapper (a GAN's MMSeparateDistributedDataParallel) gets the
        # default one's device settings (no device_ids on CPU) unless it sets them itself.
        cfg.model_wrapper_cfg = {
            **dist.ddp_wrapper_cfg(find_unused_parameters=cfg.get('find_unused_parameters', False)),
            **(cfg.get('model_wrapper_cfg') or {})}
    for key, value in overrides.items():
        cfg[key] = value
    # Before anything is built: a missing file or a class-count mismatch is one
    # line here, a traceback from deep inside mmengine or mmdet later.
    _check_data_paths(cfg)
    # tools/test.py passes the checkpoint it tests as load_from; testing never
    # initialises the model, so the init_cfg weights need not exist then.
    check_checkpoint_paths(cfg, initialising='load_from' not in overrides)
    check_num_classes(cfg)
    return make_runner(cfg)


def make_runner(cfg: Config) -> Runner:
    """``Runner.from_cfg`` whose checkpoints load with ``weights_only=True`` and
    whose training stops with :class:`TrainingDiverged` at a non-finite loss.

    A config naming an unknown type or setting fails with one line instead
    of a traceback.
    """
    try:
        runner = Runner.from_cfg(cfg)
    except KeyError as error:
        message = str(error.args[0]) if error.args else ''
        if 'registry' not in message:
            raise
        raise NasError(f'unknown type in the config: {message.split(". ")[0]}') from error
    except TypeError as error:
        if 'unexpected keyword argument' not in str(error):
            raise
        raise NasError(f'a component of the config has an unknown setting: {error}') from error
    if not any(isinstance(hook, WeightsOnlyCheckpointHook) for hook in runner.hooks):
        runner.register_hook(WeightsOnlyCheckpointHook())
    if not any(isinstance(hook, NonFiniteLossHook) for hook in runner.hooks):
        runner.register_hook(NonFiniteLossHook())
    return runner


class TrainingDiverged(FloatingPointError):
    """A training loss that is NaN or infinite; ``iteration`` counts from 1, as mmengine logs."""

    def __init__(self, iteration: int, loss: float):
        super().__init__(f'training diverged at iteration {iteration}: loss is {loss}')
        self.iteration = iteration
        self.loss = loss


class NonFiniteLossHook(Hook):
    """Stops training with :class:`TrainingDiverged` at the first non-finite loss.

    What mmdet's ``CheckInvalidLossHook`` does, but every iteration and with
    an exception that says what happened (mmdet's asserts without a message).
    Checking every iteration costs no extra device sync: mmengine's
    ``RuntimeInfoHook`` already reads every loss value into the message hub.
    It runs before the checkpoint hook, so no checkpoint holds the diverged weights.
    """

    priority = 'VERY_HIGH'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        loss = (outputs or {}).get('loss')
        if loss is None:
            return
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        if not math.isfinite(value):
            raise TrainingDiverged(runner.iter + 1, value)


def _check_data_paths(cfg: Config) -> None:
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if loader and loader.get('dataset') is not None:
            check_dataset_paths(loader['dataset'], split)
