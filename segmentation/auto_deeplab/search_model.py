"""The Auto-DeepLab search network wrapped for the bilevel trainer and for mIoU evaluation."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from torch import nn

from backbones.auto_deeplab.search_network import AutoDeepLabSearchNet

IGNORE_INDEX = 255


class AutoDeepLabSearchModel(nn.Module):
    """mmseg's data preprocessor + the search network + pixel-wise cross-entropy.

    ``forward(batch)`` takes a collated batch of mmseg samples (``inputs``
    and ``data_samples`` as PackSegInputs writes them) and returns the loss
    the trainer minimises; ``test_step(batch)`` returns the data samples with
    ``pred_sem_seg`` filled in, at each image's original size, as mmseg's
    IoUMetric expects.
    """

    def __init__(self, net: AutoDeepLabSearchNet, data_preprocessor: nn.Module):
        super().__init__()
        self.net = net
        self.data_preprocessor = data_preprocessor

    @property
    def arch_params(self):
        # A property, not an attribute: assigning the module would register the
        # same logits a second time and store them twice in every checkpoint.
        return self.net.arch_params

    def arch_weights(self) -> dict[str, torch.Tensor]:
        return self.net.arch_weights()

    @property
    def arch_op_names(self) -> dict[str, list[str]]:
        return self.net.arch_op_names

    @property
    def arch_row_names(self) -> dict[str, list[str]]:
        return self.net.arch_row_names

    def forward(self, batch: dict) -> torch.Tensor:
        data = self.data_preprocessor(batch, training=True)
        logits = self.net(data['inputs'])
        labels = torch.stack([sample.gt_sem_seg.data[0] for sample in data['data_samples']])
        return F.cross_entropy(logits, labels.long(), ignore_index=IGNORE_INDEX)

    @torch.no_grad()
    def test_step(self, batch: dict) -> list:
        data = self.data_preprocessor(batch, training=False)
        logits = self.net(data['inputs'])
        samples = data['data_samples']
        for sample, image_logits in zip(samples, logits):
            height, width = sample.img_shape
            image_logits = image_logits[:, :height, :width]
            if tuple(sample.ori_shape) != (height, width):
                image_logits = F.interpolate(image_logits[None], size=sample.ori_shape,
                                             mode='bilinear', align_corners=False)[0]
            sample.pred_sem_seg = PixelData(data=image_logits.argmax(0, keepdim=True))
        return samples
