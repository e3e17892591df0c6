"""The Auto-DeepLab toy search pointed, by config overrides alone, at a user's own data in
mmseg's generic layout whose images differ in size (as in ADE20K or VOC)."""
import json
import math
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ONE_THREAD, run_tool
from test_auto_deeplab_search import CONFIG

CLASSES = ('background', 'box', 'disc')
PALETTE = ((0, 0, 0), (200, 40, 40), (40, 40, 200))
# (height, width): no two alike, none a multiple of 32, both orientations.
SIZES = {'train': [(48, 80), (72, 56), (60, 100), (90, 64), (40, 44), (66, 96), (100, 70),
                   (52, 88)],
         'val': [(58, 90), (84, 60), (45, 77), (70, 70)]}


def write_scene(image_path, label_path, height, width, rng):
    """A noisy background with a box (class 1) and a disc (class 2), and their label map."""
    label = np.zeros((height, width), np.uint8)
    top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
    label[top:top + height // 3, left:left + width // 3] = 1
    rows, cols = np.mgrid[:height, :width]
    centre_row, centre_col = rng.integers(height // 4, 3 * height // 4), rng.integers(width // 2, width)
    label[(rows - centre_row) ** 2 + (cols - centre_col) ** 2 < (min(height, width) // 5) ** 2] = 2
    label[0, :] = 255  # an ignored row, as real label maps have
    image = np.array(PALETTE, np.int16)[np.minimum(label, 2)]
    image = np.clip(image + rng.integers(-30, 30, image.shape), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(image_path)
    Image.fromarray(label).save(label_path)


def make_generic_dataset(root):
    """images/{train,val}/*.png and annotations/{train,val}/*.png of the sizes in SIZES."""
    rng = np.random.default_rng(0)
    for split, sizes in SIZES.items():
        (root / 'images' / split).mkdir(parents=True)
        (root / 'annotations' / split).mkdir(parents=True)
        for index, (height, width) in enumerate(sizes):
            write_scene(root / 'images' / split / f'{index:03d}.png',
                        root / 'annotations' / split / f'{index:03d}.png', height, width, rng)
    return root


def generic_layout_options(root) -> list[str]:
    """The overrides that point the toy config at ``root`` in mmseg's generic layout."""
    options = [f'data_root={root}/']
    palette = '[' + ','.join(f'[{r},{g},{b}]' for r, g, b in PALETTE) + ']'
    # Every split the config names, test too (the search checks that they share classes).
    for split, folder in (('train', 'train'), ('val', 'val'), ('test', 'val')):
        dataset = f'{split}_dataloader.dataset'
        options += [f'{dataset}.type=BaseSegDataset',
                    f'{dataset}.data_prefix.img_path=images/{folder}',
                    f'{dataset}.data_prefix.seg_map_path=annotations/{folder}',
                    f'{dataset}.img_suffix=.png', f'{dataset}.seg_map_suffix=.png',
                    f'{dataset}.metainfo.classes=[{",".join(CLASSES)}]',
                    f'{dataset}.metainfo.palette={palette}']
    return options


def tiny_search_options() -> list[str]:
    """A 3-layer, F = 2 trellis; 2 epochs of 2 iterations, architecture steps in the second."""
    search = 'differentiable_search'
    return [f'{search}.network.num_layers=3', f'{search}.network.filter_multiplier=2',
            f'{search}.trainer.epochs=2', f'{search}.trainer.arch_start_epoch=1',
            f'{search}.trainer.max_iters_per_epoch=2', f'{search}.eval_interval=1']


@pytest.mark.slow  # a whole search beside the session's Auto-DeepLab one
def test_search_on_own_data_of_varying_image_sizes(tmp_path):
    root = make_generic_dataset(tmp_path / 'my_data')
    work_dir = tmp_path / 'work'
    run_tool([sys.executable, 'tools/search.py', CONFIG, '--work-dir', str(work_dir),
              '--cfg-options', *generic_layout_options(root), *tiny_search_options()],
             env_extra=ONE_THREAD, check=True)

    document = json.loads((work_dir / 'best_arch.json').read_text())
    miou = document['metrics']['mIoU']
    assert isinstance(miou, float) and math.isfinite(miou) and 0.0 <= miou <= 100.0
    assert len(document['arch']['path']) == 3
    # eval_interval=1: the val images were also evaluated after each epoch.
    log = (work_dir / 'search.log').read_text()
    assert log.count(', mIoU ') == 2, log
