"""Per-task export adapters: how a found architecture becomes a plain model.

A task registers one adapter per kind of arch document it writes
(``spaces``, the documents' ``space`` names) in :data:`EXPORT_ADAPTERS`::

    @EXPORT_ADAPTERS.register_module()
    class MyExport(ExportAdapter):
        spaces = ('my-space',)
        slot = 'backbone'                      # where model.<slot>.arch goes
        slot_types = ('MyBackbone', 'MySuperNet')  # what model.<slot> may be
        search_types = ('MySuperNet',)         # what a plain config must never name
        default_scope = 'my_library'           # unless the task config sets default_scope

or, so that importing the task imports neither its adapters nor ONNX, in a
registry of its own made at import by :func:`task_export_adapters`
(``EXPORT_ADAPTERS = task_export_adapters('my_task.export')`` in the task's
``__init__``), whose module is imported when :func:`adapter_for` looks.

The base class covers the common case, a module that takes ``arch=`` in the
task config's model (a fine-tuning config): the reference is that model with
``arch`` read from the search's arch file (as the project's configs name it)
and the plain model the same config with the arch document inlined. A task
whose reference is a supernet path (DetNAS) overrides :meth:`reference`.
"""
from __future__ import annotations

import contextlib
import copy
import logging
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope, Registry
from mmengine.registry import MODELS as ROOT_MODELS
from torch import nn

from nas_tasks.errors import NasError, first_line
from nas_tasks.export.found import FoundModel
from nas_tasks.export.inputs import example_images, input_size_of
from nas_tasks.seeding import seed_everything

EXPORT_ADAPTERS = Registry('export adapter', scope='nas_tasks')


class Reference(NamedTuple):
    """The model the export must reproduce, and the weights of the plain model.

    ``description`` names it in the parity line ("the supernet path ...");
    ``weights`` says where the weights came from.
    """
    model: nn.Module
    state_dict: dict[str, torch.Tensor]
    description: str
    weights: str


class ExportAdapter:
    """Turns one found model of a task into a reference and a plain model config.

    Args:
        found: the arch document and its work dir.
        task_cfg: the task config (mmdet or mmseg) whose model holds the
            searchable module.
        checkpoint: optional weights of the whole task model (e.g. a
            fine-tuned checkpoint) to export instead of the search's.
        seed: seeds the initialisation of whatever no file gives weights to.
    """

    spaces: tuple[str, ...] = ()
    slot = 'backbone'
    # The module types model.<slot> may have in a task config for these spaces.
    slot_types: tuple[str, ...] = ()
    search_types: tuple[str, ...] = ()
    # Packages a plain config imports (custom_imports) to register what it names.
    plain_imports: tuple[str, ...] = ()
    # False: the plain config holds the model only, not the task config's data and
    # schedule (a network exported on its own, such as a GAN's generator).
    keeps_task_config = True
    input_name = 'inputs'  # the ONNX graph's input
    # The registry scope the task's models are built in, when the task config
    # sets no default_scope (a task that serves several libraries leaves it unset).
    default_scope: str | None = None

    def __init__(self, found: FoundModel, task_cfg: Config, checkpoint: str | None = None,
                 seed: int = 0):
        self.found = found
        self.task_cfg = task_cfg
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.seed = seed
        self.check_task_config()

    def check_task_config(self) -> None:
        """One line if the task config has no place for the found arch."""
        found = self.found
        if 'model' not in self.task_cfg:
            raise NasError('the task config has no model; pass the config that trains the found '
                           'model (a fine-tuning config, or the search config of a one-shot search)')
        slot_type = slot_of(self.model_cfg(), self.slot).get('type')
        if slot_type not in self.slot_types:
            raise NasError(f"{found.arch_path.name} is an arch of space '{found.space_name}', but the "
                           f"task config's model.{self.slot} is {slot_type!r}; pass a config whose "
                           f"model.{self.slot} is {' or '.join(self.slot_types)}")

    # -- what the task says -----------------------------------------------------
    @property
    def scope(self) -> str:
        """The registry scope the model is built in: the task config's ``default_scope``,
        else the task's own."""
        scope = self.task_cfg.get('default_scope') or self.default_scope
        if not scope:
            raise NasError(f'the task config sets no default_scope and {type(self).__name__} '
                           "names none: set default_scope (the registry scope of the config's "
                           'model) in the task config')
        return scope

    def model_cfg(self) -> dict:
        return copy.deepcopy(self.task_cfg.to_dict()['model'])

    def point_at_weights(self, slot: dict, work_dir: Path | None) -> None:
        """Make ``slot`` load the search's weights from ``work_dir`` in ``init_weights``,
        or none (``work_dir`` None: a checkpoint gives them, or the plain config).
        By default the searchable module has no weight file of its own."""

    def load_search_weights(self, model: nn.Module) -> None:
        """Load the search's weights into the initialised ``model`` (no checkpoint given),
        strictly: a file that does not fit must not leave random weights behind."""

    def weights_note(self) -> str:
        """Where the reference's weights come from when no checkpoint is given."""
        return (f'no weights from the search: the initialisation of the task config '
                f'(init_weights(), seed {self.seed})')

    # -- the tensor forward -----------------------------------------------------
    def example_inputs(self, input_size: Sequence[int] | None) -> torch.Tensor:
        """The input of the parity checks and the ONNX graph: one preprocessed image of
        ``input_size`` (default: the task config's test image size)."""
        return example_images(input_size or input_size_of(self.task_cfg), self.seed)

    def tensor_forward(self, model: nn.Module, inputs: torch.Tensor) -> Any:
        """The forward that is checked and exported: mmdet's and mmseg's tensor mode, the
        whole network up to the heads' raw outputs."""
        return model(inputs, mode='tensor')

    # -- the reference ----------------------------------------------------------
    def reference(self) -> Reference:
        """The task config's model with ``arch`` read from the arch file, the search's
        weights (or ``checkpoint``), in eval mode."""
        cfg = self.model_cfg()
        slot = slot_of(cfg, self.slot)
        slot['arch'] = str(self.found.arch_path)
        self.point_at_weights(slot, None if self.checkpoint else self.found.work_dir)
        model = build_model(cfg, self.scope, self.seed)
        if self.checkpoint is not None:
            load_strict(model, self.checkpoint)
            weights = f'the checkpoint {self.checkpoint}'
        else:
            with DefaultScope.overwrite_default_scope(self.scope), quiet_mmengine_logger():
                model.init_weights()
            self.load_search_weights(model)
            weights = self.weights_note()
        model.eval()
        description = (f"the task config's model with {self.slot}.arch="
                       f'{self.found.arch_path.name} (the search path)')
        return Reference(model, model.state_dict(), description, weights)

    # -- the plain model --------------------------------------------------------
    def plain_model_cfg(self) -> dict:
        """The task config's model with the arch document inlined and no weight files."""
        cfg = self.model_cfg()
        slot = slot_of(cfg, self.slot)
        slot['arch'] = self.found.inline_document()
        self.point_at_weights(slot, None)
        return cfg


@contextlib.contextmanager
def quiet_mmengine_logger():
    """mmengine logs every initialised parameter at INFO: keep the export's output to its results."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def slot_of(model_cfg: dict, dotted: str) -> dict:
    """The sub-config at ``dotted`` (e.g. ``'backbone'``, ``'neck'``) of a model config."""
    node: Any = model_cfg
    for key in dotted.split('.'):
        if not isinstance(node, dict) or not isinstance(node.get(key), dict):
            raise NasError(f'the task config has no model.{dotted} to put the arch in')
        node = node[key]
    return node


def build_model(model_cfg: dict, scope: str, seed: int) -> nn.Module:
    """``model_cfg`` built from mmengine's registry in ``scope`` (mmdet or mmseg), seeded."""
    seed_everything(seed)
    with DefaultScope.overwrite_default_scope(scope):
        try:
            return ROOT_MODELS.build(copy.deepcopy(model_cfg))
        except NasError:
            raise
        except Exception as error:  # noqa: BLE001  (mmengine wraps build errors in many types)
            raise NasError(f'cannot build the model: {first_line(error)}') from error


def load_strict(model: nn.Module, path: Path) -> None:
    """Load an mmengine checkpoint (or a bare state dict) into ``model``, every key matching."""
    from nas_tasks.checkpoint import safe_torch_load
    state = safe_torch_load(path)
    if isinstance(state, dict) and isinstance(state.get('state_dict'), dict):
        state = state['state_dict']
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise NasError(f'{path} does not fit the model: {first_line(error)}') from error


def task_export_adapters(location: str) -> Registry:
    """A task's export-adapter registry: a child of :data:`EXPORT_ADAPTERS` whose
    adapters are registered by the module ``location``, imported (with ONNX and
    whatever else an export needs) only when :func:`adapter_for` looks."""
    return Registry('export adapter', parent=EXPORT_ADAPTERS, scope=location.split('.')[0],
                    locations=[location])


def registered_adapters() -> list[type[ExportAdapter]]:
    """Every adapter: those of :data:`EXPORT_ADAPTERS` and of the tasks' registries,
    whose modules are imported now."""
    registries = [EXPORT_ADAPTERS, *EXPORT_ADAPTERS.children.values()]
    for registry in registries:
        try:
            registry.import_from_location()
        except Exception as error:  # noqa: BLE001  (any error of a task's adapter module)
            raise NasError(f'the export adapters of {registry.scope} failed to import: '
                           f'{type(error).__name__}: {first_line(error)}') from error
    return [adapter for registry in registries for adapter in registry.module_dict.values()]


def adapter_for(found: FoundModel) -> type[ExportAdapter]:
    """The registered adapter whose ``spaces`` hold the found document's space."""
    adapters = registered_adapters()
    for adapter in adapters:
        if found.space_name in adapter.spaces:
            return adapter
    known = sorted(space for adapter in adapters for space in adapter.spaces)
    raise NasError(f"no export adapter for space '{found.space_name}' ({found.arch_path}); "
                   f"adapters exist for: {', '.join(known) or 'none'}")
