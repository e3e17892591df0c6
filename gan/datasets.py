"""mmengine datasets for training and evaluating a GAN.

* :class:`GANImages`: the real images of CIFAR-10, STL-10, any data in
  CIFAR-10's python-batch layout (the toy set) or a folder of one's own PNG
  and JPEG images, read from a local folder (nothing is downloaded), resized
  to ``img_size`` and scaled to [-1, 1] as the official AutoGAN code does
  (``Resize``, ``ToTensor``, ``Normalize(0.5, 0.5)``). Items are
  ``dict(images=C x H x W tensor)``. The final training's data loaders and the
  search's shared training (``estimator.real_data``) read the same configs.
* :class:`LatentNoise`: a fixed set of latent vectors, the "data" an
  evaluation runs the generator on. Items are ``dict(noise=tensor)``; the same
  seed gives the same vectors, whatever the number of processes that share them.

Batch them with ``collate_fn=dict(type='default_collate')``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import numpy as np
import torch
from mmengine.registry import DATASETS
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms
from torchvision.datasets import CIFAR10, STL10

from gan.cifar10_batches import CIFAR10PythonBatches
from nas_tasks.errors import NasError, first_line
from nas_tasks.validation import check_int


class ImageSource(NamedTuple):
    """How to read one kind of data set."""
    open: Callable[[str, str], Dataset]  # (root, split) -> torchvision dataset of PIL images
    splits: tuple[str, ...]
    layout: str  # what the root folder must hold
    get_it: str  # how a user gets it


IMAGE_SOURCES: dict[str, ImageSource] = {
    'cifar10': ImageSource(
        lambda root, split: CIFAR10(root, train=split == 'train', download=False),
        ('train', 'test'), 'cifar-10-batches-py/ (the python version, with its real MD5 sums)',
        'download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html '
        'and unpack it there'),
    'stl10': ImageSource(
        lambda root, split: STL10(root, split=split, download=False),
        STL10.splits, 'stl10_binary/',
        'download stl10_binary.tar.gz from https://cs.stanford.edu/~acoates/stl10/ '
        'and unpack it there'),
    'cifar10_batches': ImageSource(
        lambda root, split: CIFAR10PythonBatches(root, train=split == 'train'),
        ('train', 'test'), 'cifar-10-batches-py/ (its MD5 sums unchecked: the toy set, a subset)',
        'generate the toy set with: python tools/make_toy_data.py cifar10 DATA_ROOT'),
    'folder': ImageSource(
        lambda root, split: ImagesUnder(root), ('train',), 'PNG or JPEG images, at any depth',
        'point data_root at a folder of your images'),
}


@DATASETS.register_module()
class GANImages(Dataset):
    """Real images in [-1, 1] at ``img_size`` x ``img_size``, as ``dict(images=...)``.

    Args:
        source: ``'cifar10'`` (torchvision's class, MD5 sums checked), ``'stl10'``,
            ``'cifar10_batches'`` (CIFAR-10's layout unchecked, as the toy set) or
            ``'folder'`` (every ``.png``, ``.jpg`` and ``.jpeg`` under ``data_root``).
        data_root: the folder read (holding ``cifar-10-batches-py/`` or
            ``stl10_binary/``, or the images).
        split: ``'train'``/``'test'`` (CIFAR-10), one of STL-10's splits
            (``'train+unlabeled'`` for the AutoGAN transfer); a folder is one ``'train'``.
        img_size: the side the images are resized to (bilinear, as PIL does).
    """

    def __init__(self, source: str, data_root: str, split: str = 'train', img_size: int = 32):
        if source not in IMAGE_SOURCES:
            raise NasError(f"unknown image source '{source}'; choose one of "
                           f"{', '.join(IMAGE_SOURCES)}")
        kind = IMAGE_SOURCES[source]
        if split not in kind.splits:
            raise NasError(f"{source} has no split '{split}'; its splits are: "
                           f"{', '.join(kind.splits)}")
        check_int('img_size', img_size)
        self.source, self.data_root, self.split, self.img_size = source, data_root, split, img_size
        self.resize = transforms.Resize((img_size, img_size))
        self.normalise = transforms.Compose([transforms.ToTensor(),
                                             transforms.Normalize((0.5,) * 3, (0.5,) * 3)])
        self._images: Dataset | None = None

    @property
    def images(self) -> Dataset:
        """The torchvision dataset, read on first use: a dataloader asks its length when it
        is built, so training finds missing data before it starts, while an FID metric
        whose real statistics are cached never reads the images (STL-10's are gigabytes)."""
        if self._images is None:
            kind = IMAGE_SOURCES[self.source]
            try:
                self._images = kind.open(self.data_root, self.split)
            except RuntimeError as error:  # torchvision: "Dataset not found or corrupted"
                raise NasError(f'{self.source} data not found in {self.data_root}: it must hold '
                               f'{kind.layout}; {kind.get_it}') from error
        return self._images

    def __len__(self) -> int:
        return len(self.images)

    def _image(self, index: int) -> Image.Image:
        image, _ = self.images[index]
        return image if image.size == (self.img_size, self.img_size) else self.resize(image)

    def __getitem__(self, index: int) -> dict:
        return dict(images=self.normalise(self._image(index)))

    def uint8_batches(self, batch_size: int = 100) -> Iterator[torch.Tensor]:
        """All images as uint8 ``B x 3 x H x W`` batches, in order: the real side of the FID.

        Straight from the resized images, not from the [-1, 1] tensors, whose
        float rounding would move some pixels down a grey level when quantised.
        """
        for start in range(0, len(self), batch_size):
            stop = min(start + batch_size, len(self))
            pixels = np.stack([np.asarray(self._image(i).convert('RGB')) for i in range(start, stop)])
            yield torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()


class ImagesUnder(Dataset):
    """Every PNG and JPEG image under ``root``, at any depth, as ``(RGB PIL image, 0)``
    (torchvision's item), in the order of their sorted paths."""

    SUFFIXES = ('.png', '.jpg', '.jpeg')

    def __init__(self, root: str):
        folder = Path(root)
        if not folder.is_dir():
            raise NasError(f'no image folder at {folder}: set data_root to a folder of PNG or '
                           'JPEG images')
        self.paths = sorted(path for path in folder.rglob('*')
                            if path.suffix.lower() in self.SUFFIXES and path.is_file())
        if not self.paths:
            raise NasError(f'no PNG or JPEG images under {folder} (at any depth): put the '
                           'images there or point data_root at their folder')

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        try:
            with Image.open(self.paths[index]) as image:
                return image.convert('RGB'), 0
        except OSError as error:  # PIL's UnidentifiedImageError is one
            raise NasError(f'cannot read the image {self.paths[index]}: {first_line(error)}; '
                           'remove it or replace it with a PNG or JPEG image') from None


@DATASETS.register_module()
class LatentNoise(Dataset):
    """``num_images`` latent vectors ``z ~ N(0, I)`` of length ``latent_dim``, fixed by ``seed``."""

    def __init__(self, num_images: int, latent_dim: int = 128, seed: int = 0,
                 data_root: str | None = None):
        if data_root is not None:
            # What ``--cfg-options data_root=...`` sets on every dataset: it would leave the
            # FID's real data and the extractor's weights where they were.
            raise NasError('data_root= does not move a GAN config: set '
                           'train_dataloader.dataset.data_root, val_evaluator.real_data.data_root '
                           'and test_evaluator.real_data.data_root instead')
        check_int('num_images', num_images)
        generator = torch.Generator().manual_seed(seed)
        self.noise = torch.randn(num_images, latent_dim, generator=generator)

    def __len__(self) -> int:
        return len(self.noise)

    def __getitem__(self, index: int) -> dict:
        return dict(noise=self.noise[index])
