"""A PNG grid of a generator's samples at every evaluation, for a look at what the numbers mean.

:class:`SampleGridHook` draws ``num_images`` images from the model's
``generate(noise)`` (the EMA generator of
:class:`~gan.autogan.final_training.AutoGANTrainingModel`) on the same noise
every time, so the grids of one run show the same latent points as training
goes on, quantised as the metrics see them. After each validation it writes
``<work_dir>/samples/iter_<N>.png``; after a test,
``samples/test_<checkpoint name>.png``. Files are written atomically, by the
main process only.
"""
from __future__ import annotations

from pathlib import Path

import torch
from mmengine.dist import master_only
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from gan.autogan.pictures import save_sample_grid
from nas_tasks.errors import NasError
from nas_tasks.validation import check_positive


@HOOKS.register_module()
class SampleGridHook(Hook):
    """Writes a grid of ``num_images`` samples, ``nrow`` per row, from noise fixed by ``seed``."""

    priority = 'LOW'

    def __init__(self, num_images: int = 100, nrow: int = 10, seed: int = 0,
                 folder: str = 'samples'):
        check_positive(num_images=num_images, nrow=nrow)
        self.num_images, self.nrow, self.seed, self.folder = num_images, nrow, seed, folder

    @master_only
    def after_val_epoch(self, runner, metrics=None) -> None:
        self.write(runner, f'iter_{runner.iter}.png')

    @master_only
    def after_test_epoch(self, runner, metrics=None) -> None:
        checkpoint = runner.cfg.get('load_from')
        self.write(runner, f'test_{Path(checkpoint).stem}.png' if checkpoint else 'test.png')

    def write(self, runner, name: str) -> Path:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'generate'):
            raise NasError(f'SampleGridHook needs a model with generate(noise) and latent_dim, '
                           f'got {type(model).__name__}')
        noise = torch.randn(self.num_images, model.latent_dim,
                            generator=torch.Generator().manual_seed(self.seed))
        path = Path(runner.work_dir) / self.folder / name
        save_sample_grid(model.generate(noise), path, rows=self.nrow)
        return path
