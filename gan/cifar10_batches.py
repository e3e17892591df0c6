"""CIFAR-10's python-batch layout, read without MD5 checks, and named when it is not that layout.

``torchvision.datasets.CIFAR10`` checks every file's MD5 against the real
CIFAR-10's, which no other data can pass (the toy set of ``gan/toy_data.py``,
a subset, one's own images in the layout), and answers a file in another
layout with a bare ``KeyError: 'data'``. :class:`CIFAR10PythonBatches` is
that class with the checksums left out (torchvision's own reading code,
unchanged) and, where it fails, one line naming the file and what it lacks.
"""
from __future__ import annotations

import pickle
from pathlib import Path

from torchvision.datasets import CIFAR10

from nas_tasks.errors import NasError, first_line

FOLDER = 'cifar-10-batches-py'
# What each file of the layout holds, as torchvision reads it (pickle's latin1 encoding).
BATCH_KEYS = ('data', 'labels')  # data: N x 3072 uint8 rows (R, G, B planes); labels: N ints
META_KEY = 'label_names'
MAKE_IT = 'python tools/make_toy_data.py cifar10 DIR writes the layout'


class CIFAR10PythonBatches(CIFAR10):
    """CIFAR-10's python batches under ``root/cifar-10-batches-py/``, without MD5 checks.

    Reads the real CIFAR-10 and the toy set alike; never downloads. A missing
    file or one not in the layout is a :class:`NasError` naming it.
    """

    train_list = [[name, None] for name, _ in CIFAR10.train_list]
    test_list = [[name, None] for name, _ in CIFAR10.test_list]
    meta = {**CIFAR10.meta, 'md5': None}

    def __init__(self, root, train: bool = True, transform=None, target_transform=None):
        folder = Path(root) / FOLDER
        names = [name for name, _ in self.train_list + self.test_list] + [self.meta['filename']]
        missing = [name for name in names if not (folder / name).is_file()]
        if missing:
            raise NasError(f'{folder} has no {missing[0]}: CIFAR-10 in its python layout holds '
                           f'data_batch_1..5, test_batch and batches.meta; {MAKE_IT}')
        try:
            super().__init__(root, train, transform, target_transform, download=False)
        except (KeyError, ValueError, TypeError, EOFError, pickle.UnpicklingError) as error:
            files = [name for name, _ in (self.train_list if train else self.test_list)]
            raise NasError(_what_is_wrong(folder, files) or
                           f'cannot read CIFAR-10 batches in {folder}: {first_line(error)}') from None


def _what_is_wrong(folder: Path, batch_files: list[str]) -> str | None:
    """One line naming the first file of ``folder`` not in CIFAR-10's layout, or None."""
    expected = [(name, BATCH_KEYS) for name in batch_files] + [(CIFAR10.meta['filename'], (META_KEY,))]
    for name, keys in expected:
        path = folder / name
        try:
            with open(path, 'rb') as file:
                record = pickle.load(file, encoding='latin1')
        except (EOFError, pickle.UnpicklingError, ValueError) as error:
            return f'{path} is not a pickle ({first_line(error)}); {MAKE_IT}'
        if not isinstance(record, dict):
            return f'{path} holds a {type(record).__name__}, not the dict of a CIFAR-10 batch; {MAKE_IT}'
        missing = [key for key in keys if key not in record]
        if not missing:
            continue
        as_bytes = [key for key in missing if key.encode() in record]
        if as_bytes:
            # A Python 3 pickle of b'data': CIFAR's files are Python 2 pickles, whose keys load as str.
            return (f"{path} has the key b'{as_bytes[0]}' (bytes) where CIFAR-10's layout has "
                    f"'{as_bytes[0]}' (a str, as Python 2 pickles load): write its keys as "
                    f"str; {MAKE_IT}")
        return (f"{path} has no '{missing[0]}' (its keys: {', '.join(map(repr, record)) or 'none'}); "
                f"a CIFAR-10 batch holds {' and '.join(map(repr, keys))}; {MAKE_IT}")
    return None
