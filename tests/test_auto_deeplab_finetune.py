"""A derived Auto-DeepLab network trains and tests on the toy Cityscapes layout, with
this project's tools and with mmseg's own."""
import re
from pathlib import Path

import pytest
import torch

from conftest import openmmlab_tool, run_tool

FINETUNE_CONFIG = 'configs/auto_deeplab/auto_deeplab_finetune_toy.py'
# A path that ends at output stride 16, unlike the preset's (stride 8), so the
# head's wiring from the arch is exercised.
FOUND_PATH = [0, 1, 2, 2, 1, 2]


@pytest.fixture(scope='module')
def found_arch(tmp_path_factory) -> Path:
    from backbones.auto_deeplab import PRESETS, save_arch_document
    path = tmp_path_factory.mktemp('search') / 'best_arch.json'
    arch = dict(PRESETS['autodeeplab_s'], path=FOUND_PATH)
    save_arch_document(path, arch, {'mIoU': 1.0})
    return path


def finetune_options(data_root: Path, arch_file: Path, iters: int = 2) -> list[str]:
    root = f'{data_root}/'
    return [f'{split}_dataloader.dataset.data_root={root}' for split in ('train', 'val', 'test')] + [
        f'model.backbone.arch={arch_file}', f'train_cfg.max_iters={iters}',
        f'train_cfg.val_interval={iters}', f'default_hooks.checkpoint.interval={iters}']


def test_segmentor_wires_the_head_to_where_the_path_ends(found_arch):
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    from nas_tasks.builder import load_config
    from nas_tasks.modules import register_all_modules
    register_all_modules()
    cfg = load_config(FINETUNE_CONFIG, {'model.backbone.arch': str(found_arch)})
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    # F = 8 (the toy config's), B = 5: stride 16 (level 2) has 5 * 8 * 4 channels.
    assert model.backbone.out_strides == (4, 16)
    assert model.decode_head.in_channels == 160 and model.decode_head.in_index == 1
    assert model.decode_head.c1_bottleneck.conv.in_channels == 40
    dilations = [module.conv.dilation[0]
                 for module in list(model.decode_head.aspp_modules)[1:]]
    assert dilations == [6, 12, 18]  # DeepLab's rates at output stride 16
    model.eval()
    with torch.no_grad():
        logits = model(torch.zeros(1, 3, 64, 64), mode='tensor')
    assert logits.shape == (1, 19, 16, 16)


def test_found_network_trains_and_tests_with_mmseg_tools_and_ours(found_arch, toy_cityscapes,
                                                                  tmp_path):
    """mmseg's own train and test tools, then this project's tools/test.py (what the README
    shows; tools/train.py runs in the NAS-FPN and AutoGAN tests) on the same checkpoint."""
    work_dir = tmp_path / 'mmseg_tools'
    options = finetune_options(toy_cityscapes, found_arch)
    trained = run_tool(['python', openmmlab_tool('mmseg', 'train'), FINETUNE_CONFIG,
                        '--work-dir', str(work_dir), '--cfg-options', *options], check=True)
    assert 'mIoU' in trained.stdout + trained.stderr
    checkpoint = work_dir / 'iter_2.pth'
    state = torch.load(checkpoint, map_location='cpu', weights_only=True)['state_dict']
    assert any(key.startswith('backbone.cells.5.') for key in state)
    assert not any(key.startswith('backbone.cells.6.') for key in state)
    tested = run_tool(['python', openmmlab_tool('mmseg', 'test'), FINETUNE_CONFIG, str(checkpoint),
                       '--work-dir', str(work_dir), '--cfg-options', *options], check=True)
    assert re.search(r'mIoU: \d', tested.stdout + tested.stderr)

    ours = run_tool(['python', 'tools/test.py', FINETUNE_CONFIG, str(checkpoint),
                     '--work-dir', str(work_dir), '--cfg-options', *options], check=True)
    match = re.search(r'^mIoU: ([0-9.]+)$', ours.stdout, re.MULTILINE)
    assert match and 0.0 <= float(match.group(1)) <= 100.0
    # IoUMetric's per-class table: every Cityscapes class has a row.
    assert all(f' {name} ' in ours.stdout + ours.stderr
               for name in ('road', 'traffic light', 'bicycle'))
