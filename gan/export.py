"""Export adapter of AutoGAN (see :mod:`nas_tasks.export`): the found generator on its own.

The search leaves the found path's weights, ``best_generator.pth``, sliced from
the shared generator at the end of the search, whose whole state is in the
last checkpoint (``search_state.pth``). The reference is that shared
generator with the arch set (the path the search rewarded, in eval mode as
its rewards were sampled); the plain model is ``AutoGANGenerator`` with the
arch inlined, at the search's widths, with ``best_generator.pth``. ``--task``
is the search config: its ``estimator.gan`` gives the widths. The exported
forward is the generator's, noise ``z`` to an image in [-1, 1].
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from gan.autogan.estimator import GENERATOR_FILE
from gan.autogan.shared_generator import AutoGANSharedGenerator
from gan.autogan.shared_training import SharedGANSettings
from gan.autogan.space import SPACE_NAME
from nas_tasks.checkpoint import safe_torch_load
from nas_tasks.errors import NasError, first_line
from gan import DEFAULT_SCOPE, EXPORT_ADAPTERS
from nas_tasks.export.adapter import ExportAdapter, Reference, load_strict
from nas_tasks.workdir import CHECKPOINT_NAME

GENERATOR_SETTINGS = ('gf_dim', 'latent_dim', 'bottom_width')


@EXPORT_ADAPTERS.register_module()
class AutoGANExport(ExportAdapter):
    spaces = (SPACE_NAME,)
    search_types = ('AutoGANSharedGenerator',)
    plain_imports = ('gan',)
    keeps_task_config = False
    input_name = 'z'
    default_scope = DEFAULT_SCOPE  # the generators are in mmengine's own MODELS

    def check_task_config(self) -> None:
        estimator = self.task_cfg.get('estimator') or {}
        if estimator.get('type') != 'AutoGANEstimator':
            raise NasError(f"{self.found.arch_path.name} is an AutoGAN generator: pass the AutoGAN "
                           "search config as --task (its estimator.gan gives the generator's widths)")
        if self.checkpoint is not None:
            raise NasError('--checkpoint is not taken for AutoGAN: the generator is exported with '
                           f'the search\'s weights ({GENERATOR_FILE})')

    def settings(self) -> dict:
        """The shared generator's widths, as the search built it."""
        defaults = SharedGANSettings()
        gan = dict(self.task_cfg.estimator.get('gan') or {})
        return {key: gan.get(key, getattr(defaults, key)) for key in GENERATOR_SETTINGS}

    def reference(self) -> Reference:
        shared = AutoGANSharedGenerator(**self.settings())
        state_file = self.found.file(CHECKPOINT_NAME)
        state = safe_torch_load(state_file)
        try:
            weights = state['estimator']['trainer']['generator']
        except (KeyError, TypeError):
            raise NasError(f'{state_file} holds no shared generator (estimator.trainer.generator): '
                           'is it the checkpoint of an AutoGAN search?') from None
        try:
            shared.load_state_dict(weights, strict=True)
        except RuntimeError as error:
            raise NasError(f'{state_file}: the shared generator does not fit the widths of the task '
                           f'config ({self.settings()}): {first_line(error)}') from error
        shared.set_arch(self.found.arch)
        shared.eval()
        found = self._found_generator()
        return Reference(
            shared, found.state_dict(),
            f'the shared generator\'s path (AutoGANSharedGenerator with the arch set, {CHECKPOINT_NAME})',
            f'{GENERATOR_FILE} (the path\'s weights sliced from the shared generator)')

    def _found_generator(self) -> nn.Module:
        from gan.autogan.generator import AutoGANGenerator
        generator = AutoGANGenerator(self.found.inline_document(), **self.settings())
        load_strict(generator, self.found.file(GENERATOR_FILE))
        return generator

    def plain_model_cfg(self) -> dict:
        return dict(type='AutoGANGenerator', arch=self.found.inline_document(), **self.settings())

    def example_inputs(self, input_size: Sequence[int] | None) -> torch.Tensor:
        if input_size:
            raise NasError("--input-size does not apply to a generator: its input is the noise z "
                           "of the search's latent_dim")
        generator = torch.Generator().manual_seed(self.seed)
        return torch.randn(1, self.settings()['latent_dim'], generator=generator)

    def tensor_forward(self, model: nn.Module, inputs: torch.Tensor) -> Any:
        return model(inputs)
