"""A whole timm classification network as an mmengine model, for training a seed.

FNA adapts a network trained for classification (its seed, e.g. timm's
``mobilenetv2_100``) to detection or segmentation. :class:`TimmClassifier`
trains such a seed with ``tools/train.py`` on an ImageFolder set, with the
batches, modes and metric of :mod:`backbones.classification`. The network is
``self.model``, so ``ExportWeightsHook(prefix='model.')`` writes its weights
under timm's own keys, the file ``backbones.fna.seed.create_seed`` reads.
Nothing is downloaded: the network starts from timm's initialisation.
"""
from __future__ import annotations

import timm
import torch
from mmdet.registry import MODELS
from torch import nn

from nas_tasks.errors import NasError

from .classification import LogitsClassifier

__all__ = ['TimmClassifier']


@MODELS.register_module()
class TimmClassifier(LogitsClassifier):
    """``timm.create_model(model_name, pretrained=False, num_classes=num_classes, **timm_kwargs)``.

    Args:
        model_name: a timm model name.
        num_classes: number of classes (the size of timm's classifier).
        label_smoothing: of the cross-entropy loss.
        zero_classifier: start the classifier at zero (uniform predictions).
            timm's EfficientNet-family init draws it from +-1/sqrt(num_classes),
            made for 1000 classes: with 4, the first logits have a std of about
            5 and training from scratch spends its first hundred steps undoing
            that.
        timm_kwargs: more of timm's settings (``drop_rate``, ``drop_path_rate`` ...).
    """

    def __init__(self, model_name: str, num_classes: int, label_smoothing: float = 0.1,
                 zero_classifier: bool = False, data_preprocessor: dict | None = None,
                 init_cfg: dict | list | None = None, **timm_kwargs):
        super().__init__(label_smoothing, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not isinstance(model_name, str) or not timm.is_model(model_name):
            raise NasError(f'unknown timm model {model_name!r}; timm.list_models() lists them')
        if timm_kwargs.get('pretrained'):
            raise NasError('TimmClassifier does not download weights; load a local file with '
                           "init_cfg=dict(type='Pretrained', checkpoint=PATH, prefix=...)")
        timm_kwargs.pop('pretrained', None)
        self.model = timm.create_model(model_name, pretrained=False, num_classes=num_classes,
                                       **timm_kwargs)
        if zero_classifier:
            for parameter in self.model.get_classifier().parameters():
                nn.init.zeros_(parameter)

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(inputs)
