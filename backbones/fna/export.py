"""Export adapter of FNA (see :mod:`nas_tasks.export`): the adapted timm network in
an mmdet or mmseg model.

The search writes the adapted network's starting weights
(``adapted_weights.pth``: the seed remapped into it, or the super network's
ops with ``adapted_init='supernet'``); the reference is the task config's
model with ``FNABackbone(arch=best_arch.json, weights=adapted_weights.pth)``,
as the fine-tuning configs name them, and the plain model the same with the
arch inlined and the weights in the exported checkpoint.
"""
from __future__ import annotations

from pathlib import Path

from backbones import EXPORT_ADAPTERS
from nas_tasks.export.adapter import ExportAdapter

from .adapted import SPACE_NAME
from .search_task import WEIGHTS_FILE


@EXPORT_ADAPTERS.register_module()
class FNAExport(ExportAdapter):
    spaces = (SPACE_NAME,)
    slot_types = ('FNABackbone',)
    search_types = ('FNASuperNet',)
    plain_imports = ('backbones',)

    def point_at_weights(self, slot: dict, work_dir: Path | None) -> None:
        slot['seed'] = None
        slot['weights'] = None if work_dir is None else str(work_dir / WEIGHTS_FILE)

    def weights_note(self) -> str:
        return (f'{WEIGHTS_FILE} for the backbone; the task config\'s initialisation '
                f'(init_weights(), seed {self.seed}) for the rest')
