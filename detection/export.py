"""Export adapters of the detection searches (see :mod:`nas_tasks.export`).

* DetNAS: with the search config (its backbone is ``DetNASSuperNet``), the
  reference is the supernet path the search scored: the detector built from
  the search config with ``supernet/supernet_final.pth``, the arch set, and
  the BN statistics the search recalibrated for it (``best_subnet.pth``).
  The plain model is the same detector with ``DetNASBackbone`` and the arch
  inlined, its backbone weights ``best_subnet.pth``'s, the rest the
  supernet's. With a fine-tuning config (``DetNASBackbone``) it is the common
  case: ``best_subnet.pth`` loaded strictly into the backbone, or
  ``--checkpoint``.
* NAS-FPN: the proxy trainings keep no weights (``detection/proxy.py`` writes
  no checkpoint), so without ``--checkpoint`` the weights are the task
  config's initialisation, seeded.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from backbones.detnas import CHOICE_NAMES, VARIANTS, arch_to_choices, space_name, subnet_state_dict
from backbones.detnas_presets import resolve_detnas_arch
from detection.nas_fpn.space import SPACE_NAME as NAS_FPN_SPACE
from detection.one_shot import SUBNET_WEIGHTS, SUPERNET_WEIGHTS
from nas_tasks.checkpoint import safe_torch_load
from nas_tasks.errors import NasError
from detection import DEFAULT_SCOPE, EXPORT_ADAPTERS
from nas_tasks.export.adapter import ExportAdapter, Reference, build_model, load_strict

SUPERNET_DIR = 'supernet'
BACKBONE_PREFIX = 'backbone.'
_LAYER_KEY = re.compile(r'^layers\.(?P<layer>\d+)\.(?P<rest>.+)$')


@EXPORT_ADAPTERS.register_module()
class DetNASExport(ExportAdapter):
    spaces = tuple(space_name(variant) for variant in VARIANTS)
    slot_types = ('DetNASSuperNet', 'DetNASBackbone')
    search_types = ('DetNASSuperNet',)
    plain_imports = ('backbones', 'detection')
    default_scope = DEFAULT_SCOPE

    @property
    def _from_supernet(self) -> bool:
        return self.model_cfg()['backbone'].get('type') == 'DetNASSuperNet'

    def point_at_weights(self, slot: dict, work_dir: Path | None) -> None:
        # Not through a Pretrained init_cfg: mmengine loads that non-strictly.
        slot['init_cfg'] = None

    def load_search_weights(self, model: torch.nn.Module) -> None:
        load_strict(model.backbone, self.found.file(SUBNET_WEIGHTS))

    def weights_note(self) -> str:
        return (f'{SUBNET_WEIGHTS} for the backbone; the task config\'s initialisation '
                f'(seed {self.seed}) for the rest')

    # -- the supernet path ----------------------------------------------------
    def reference(self) -> Reference:
        if not self._from_supernet:
            return super().reference()
        if self.checkpoint is not None:
            raise NasError('--checkpoint exports a trained DetNASBackbone detector: pass its '
                           'fine-tuning config; with the search config the search\'s own weights '
                           f'({SUPERNET_DIR}/{SUPERNET_WEIGHTS}, {SUBNET_WEIGHTS}) are exported')
        variant, arch = resolve_detnas_arch(self.found.inline_document())
        cfg = self.model_cfg()
        cfg['backbone']['init_cfg'] = None  # every weight comes from the supernet file
        model = build_model(cfg, self.scope, self.seed)
        supernet_file = self.found.work_dir / SUPERNET_DIR / SUPERNET_WEIGHTS
        load_strict(model, supernet_file)
        model.backbone.set_arch(arch)
        subnet = self._subnet_weights(arch)
        _overlay_buffers(model.backbone, subnet, arch, variant)
        model.eval()
        # The plain detector: the supernet's weights off the path dropped, the
        # backbone's replaced by best_subnet.pth's (a mismatch then fails parity).
        state = {key: value for key, value in subnet_state_dict(model.state_dict(), arch, variant).items()
                 if not key.startswith(BACKBONE_PREFIX)}
        state.update({BACKBONE_PREFIX + key: value for key, value in subnet.items()})
        return Reference(
            model, state,
            f'the supernet path (DetNASSuperNet with the arch set, {SUPERNET_DIR}/{SUPERNET_WEIGHTS} '
            f'and the BN statistics of {SUBNET_WEIGHTS})',
            f'{SUBNET_WEIGHTS} for the backbone (sliced from the supernet after BN '
            f'recalibration); {SUPERNET_DIR}/{SUPERNET_WEIGHTS} for the rest of the detector')

    def _subnet_weights(self, arch: dict) -> dict[str, torch.Tensor]:
        path = self.found.file(SUBNET_WEIGHTS)
        saved = safe_torch_load(path)
        state = saved.get('state_dict', saved) if isinstance(saved, dict) else None
        if not isinstance(state, dict):
            raise NasError(f'{path} holds no state dict')
        meta = saved.get('meta') or {}
        if meta.get('arch') not in (None, arch):
            raise NasError(f'{path} was written for another architecture than '
                           f'{self.found.arch_path.name}')
        return state

    def plain_model_cfg(self) -> dict:
        if not self._from_supernet:
            return super().plain_model_cfg()
        cfg = self.model_cfg()
        backbone = {key: value for key, value in cfg['backbone'].items()
                    if key not in ('type', 'variant', 'init_cfg')}
        cfg['backbone'] = dict(type='DetNASBackbone', arch=self.found.inline_document(), **backbone)
        return cfg


def _overlay_buffers(supernet: torch.nn.Module, subnet: dict, arch: dict, variant: str) -> None:
    """Copy ``subnet``'s buffers (BN statistics) into the chosen blocks of ``supernet``:
    the search scored the path with these, recalibrated for it."""
    chosen = [CHOICE_NAMES.index(choice) for choice in arch_to_choices(arch, variant)]
    buffers = dict(supernet.named_buffers())
    for key, value in subnet.items():
        match = _LAYER_KEY.match(key)
        if match is not None and int(match['layer']) < len(chosen):
            key = f"layers.{match['layer']}.choices.{chosen[int(match['layer'])]}.{match['rest']}"
        if key in buffers:
            if buffers[key].shape != value.shape:
                raise NasError(f'{SUBNET_WEIGHTS}: {key} has shape {tuple(value.shape)}, the '
                               f'supernet path {tuple(buffers[key].shape)}')
            buffers[key].copy_(value)


@EXPORT_ADAPTERS.register_module()
class NASFPNExport(ExportAdapter):
    spaces = (NAS_FPN_SPACE,)
    slot = 'neck'
    slot_types = ('SearchableNASFPN',)
    plain_imports = ('detection',)
    default_scope = DEFAULT_SCOPE

    def weights_note(self) -> str:
        return ('no weights from the search (the proxy trainings keep no checkpoint): the task '
                f'config\'s initialisation, init_weights() with seed {self.seed}')
