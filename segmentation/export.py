"""Export adapter of Auto-DeepLab (see :mod:`nas_tasks.export`).

The search network is not the derived one (other widths and stem, BN without
affine parameters, every op of every edge), and the paper trains the derived
network from scratch: the search leaves an architecture, no weights. The
reference is therefore the derived network as the project builds it from
``best_arch.json`` (``AutoDeepLabSegmentor``, which wires the DeepLabv3+ head
from the arch), with a checkpoint's weights or the config's initialisation;
the plain model is mmseg's own ``EncoderDecoder`` with the head's wiring
written out and the arch inlined in ``AutoDeepLabBackbone``.
"""
from __future__ import annotations

from backbones.auto_deeplab.arch import SPACE_NAME
from nas_tasks.export.adapter import ExportAdapter
from segmentation import DEFAULT_SCOPE, EXPORT_ADAPTERS
from segmentation.auto_deeplab.segmentor import wire_decode_head


@EXPORT_ADAPTERS.register_module()
class AutoDeepLabExport(ExportAdapter):
    spaces = (SPACE_NAME,)
    slot_types = ('AutoDeepLabBackbone',)
    search_types = ('AutoDeepLabSearchNet',)
    plain_imports = ('backbones',)
    default_scope = DEFAULT_SCOPE

    def weights_note(self) -> str:
        return ('no weights from the search (the derived network is trained from scratch): the '
                f'task config\'s initialisation, init_weights() with seed {self.seed}')

    def plain_model_cfg(self) -> dict:
        cfg = super().plain_model_cfg()
        if cfg.get('type') == 'AutoDeepLabSegmentor':
            cfg['type'] = 'EncoderDecoder'
            cfg['decode_head'] = wire_decode_head(cfg['backbone'], cfg['decode_head'])
        return cfg
