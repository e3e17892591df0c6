"""ImageNet-style classification for pre-training backbones (e.g. the DetNAS supernet).

* :class:`ImageFolderClassification`: a torchvision ``ImageFolder`` split
  (``data_root/<split>/<class>/*``) with the usual ImageNet augmentation; each
  item is ``(image_tensor, label)``.
* :class:`LogitsClassifier`: the modes of an mmengine classification model
  (logits, loss, predictions) around a subclass's ``logits(inputs)``.
* :class:`BackboneClassifier`: any mmdet backbone + global average pooling +
  a linear layer. Its backbone weights are saved as ``backbone.*``, so a
  detector loads them with
  ``init_cfg=dict(type='Pretrained', checkpoint=PATH, prefix='backbone.')``.
  (``backbones.timm_classifier.TimmClassifier`` classifies with a whole timm model.)
* :class:`TopKAccuracy`: top-1 / top-5 accuracy in percent.
* :class:`ExportWeightsHook`: after training, the model's weights alone, in a
  file that ``Pretrained`` init can read (optionally one submodule's, its
  prefix removed).

Batches are ``[images, labels]`` (``collate_fn=dict(type='default_collate')``);
``BaseModel`` unpacks them into ``forward(images, labels, mode)``.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.dist import master_only
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import BaseModel, is_model_wrapper
from mmengine.registry import DATASETS, HOOKS, METRICS
from mmengine.runner.checkpoint import weights_to_cpu
from torch import nn
from torch.utils.data import Dataset
from torchvision import datasets, transforms

from nas_tasks.io import atomic_torch_save
from nas_tasks.errors import NasError
from nas_tasks.validation import check_int

__all__ = ['ImageFolderClassification', 'LogitsClassifier', 'BackboneClassifier', 'TopKAccuracy',
           'ExportWeightsHook']

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Evaluation resizes the short side to size / 0.875 (256 for 224) and crops the centre.
CENTER_CROP_FRACTION = 0.875
TOY_DATA_HINT = 'python tools/make_toy_data.py imagenet data/toy_imagenet'


def imagenet_transform(image_size: int, train: bool) -> transforms.Compose:
    if train:
        geometric = [transforms.RandomResizedCrop(image_size), transforms.RandomHorizontalFlip()]
    else:
        geometric = [transforms.Resize(int(image_size / CENTER_CROP_FRACTION)),
                     transforms.CenterCrop(image_size)]
    return transforms.Compose(
        [*geometric, transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


@DATASETS.register_module()
class ImageFolderClassification(Dataset):
    """The ``data_root/<split>`` ImageFolder tree; items are ``(image, label)``.

    Args:
        data_root: folder holding one folder per split (``train/``, ``val/``).
        split: the split's folder name.
        image_size: side of the square network input.
        train: random-resized-crop + flip if True, else resize + centre crop.
    """

    def __init__(self, data_root: str, split: str = 'train', image_size: int = 224,
                 train: bool = True):
        root = os.path.join(data_root, split)
        if not os.path.isdir(root):
            raise NasError(f'{split} image folder not found: {root}; set data_root in the config '
                           f'(--cfg-options data_root=...) or generate toy data with: '
                           f'{TOY_DATA_HINT}')
        transform = imagenet_transform(image_size, train)
        try:
            self.folder = datasets.ImageFolder(root, transform=transform)
        except FileNotFoundError as error:  # no class folders, or no images in them
            raise NasError(f'no images found in {root}: {error}') from error

    @property
    def metainfo(self) -> dict:
        return dict(classes=tuple(self.folder.classes))

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.folder[index]


class LogitsClassifier(BaseModel):
    """The modes every classifier here shares; a subclass defines :meth:`logits`.

    Args:
        label_smoothing: of the cross-entropy loss.
    """

    def __init__(self, label_smoothing: float = 0.1, data_preprocessor: dict | None = None,
                 init_cfg: dict | list | None = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.label_smoothing = label_smoothing

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor | None = None,
                mode: str = 'tensor'):
        """'tensor': logits; 'loss': ``{'loss': ...}``; 'predict': one dict per
        image with ``pred_scores`` (softmax) and, given labels, ``gt_label``."""
        logits = self.logits(inputs)
        if mode == 'tensor':
            return logits
        if mode == 'loss':
            if labels is None:
                raise ValueError("mode='loss' needs labels")
            return {'loss': F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)}
        if mode == 'predict':
            scores = logits.softmax(dim=1)
            if labels is None:
                return [dict(pred_scores=row) for row in scores]
            return [dict(pred_scores=row, gt_label=label) for row, label in zip(scores, labels)]
        raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', got {mode!r}")


@MODELS.register_module()
class BackboneClassifier(LogitsClassifier):
    """A backbone's last feature map -> global average pool -> dropout -> linear.

    Args:
        backbone: an mmdet backbone config; its forward returns a tuple of
            feature maps and the last one is classified.
        num_classes: number of classes.
        in_channels: channels of the backbone's last feature map.
        dropout: dropout probability before the linear layer.
        label_smoothing: of the cross-entropy loss.
    """

    def __init__(self, backbone: dict, num_classes: int, in_channels: int, dropout: float = 0.0,
                 label_smoothing: float = 0.1, data_preprocessor: dict | None = None,
                 init_cfg: dict | list | None = None):
        super().__init__(label_smoothing, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(in_channels, num_classes)

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.pool(self.backbone(inputs)[-1])))

    @staticmethod
    def pool(feature_map: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(feature_map, 1).flatten(1)


@METRICS.register_module()
class TopKAccuracy(BaseMetric):
    """Top-k accuracy in percent, as ``accuracy/top{k}`` for each k in ``topk``.

    A k above the number of classes counts as the number of classes (so
    top-5 of a 4-class problem is 100). Reads the ``pred_scores`` and
    ``gt_label`` that :class:`BackboneClassifier` predicts.
    """

    default_prefix = 'accuracy'

    def __init__(self, topk: Sequence[int] = (1, 5), collect_device: str = 'cpu',
                 prefix: str | None = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not topk:
            raise NasError('topk must name at least one k, e.g. (1, 5)')
        for k in topk:
            check_int('every topk entry', k)
        self.topk = tuple(topk)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        scores = torch.stack([sample['pred_scores'] for sample in data_samples]).cpu()
        labels = torch.stack([torch.as_tensor(sample['gt_label'])
                              for sample in data_samples]).cpu()
        num_classes = scores.shape[1]
        ranked = scores.topk(min(max(self.topk), num_classes), dim=1).indices
        hits = ranked == labels[:, None]
        for sample_hits in hits:
            self.results.append({k: bool(sample_hits[:k].any()) for k in self.topk})

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        return {f'top{k}': 100.0 * sum(result[k] for result in results) / len(results)
                for k in self.topk}


@HOOKS.register_module()
class ExportWeightsHook(Hook):
    """After training, saves ``{'state_dict': model.state_dict()}`` (CPU
    tensors only) as ``work_dir/filename``.

    A runner checkpoint also pickles the message hub and config, which
    ``torch.load(weights_only=True)`` (the default that ``Pretrained`` init
    uses) refuses; this file loads with it.

    Args:
        filename: the file's name in the work directory.
        prefix: if set (e.g. ``'model.'``), only the keys under it, with the
            prefix removed: the weights of the wrapped network as that
            network names them (a timm model's own keys).
    """

    priority = 'LOWEST'

    def __init__(self, filename: str = 'classifier_weights.pth', prefix: str | None = None):
        self.filename = filename
        self.prefix = prefix

    def before_train(self, runner) -> None:
        self._exported_state(runner)  # a wrong prefix stops the run before training, not after

    @master_only
    def after_train(self, runner) -> None:
        path = Path(runner.work_dir) / self.filename
        atomic_torch_save({'state_dict': weights_to_cpu(self._exported_state(runner))}, path)
        runner.logger.info(f'weights saved to {path}')

    def _exported_state(self, runner) -> dict:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        state = model.state_dict()
        if not self.prefix:
            return state
        # An OrderedDict, as state_dict() returns and weights_to_cpu expects.
        state = OrderedDict((key[len(self.prefix):], value) for key, value in state.items()
                            if key.startswith(self.prefix))
        if not state:
            raise NasError(f"ExportWeightsHook: the model has no weights under prefix "
                           f"'{self.prefix}'; set prefix to a submodule's name and a dot")
        return state
