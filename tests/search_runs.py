"""One straight toy search per search path through ``tools/search.py``, shared by the
whole session (a pytest plugin that conftest.py loads).

Every test that reads a search's outputs (files, re-export on ``--resume``, the
refusal to overwrite, weight hand-off, diagnostics, fine-tuning) reads these work
directories instead of running a search of its own. A test that changes a work
directory works on a copy (``SearchRun.copy_to``). The SIGKILL-and-resume and
torchrun tests compare their runs with these ones.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from conftest import ONE_THREAD, TOY_CONFIG, randomize_batch_norms, run_tool, shrunk_search_options


@dataclass
class SearchRun:
    """A finished toy search: its config, the --cfg-options it ran with, its work
    directory and what the tool printed."""
    config: str
    options: list[str]
    work_dir: Path
    result: subprocess.CompletedProcess

    def command(self, work_dir, *extra_options: str) -> list[str]:
        """The same search (same config and options) into another work directory."""
        return [sys.executable, 'tools/search.py', self.config, '--work-dir', str(work_dir),
                '--cfg-options', *self.options, *extra_options]

    def copy_to(self, work_dir: Path) -> Path:
        """A copy of the work directory, for a test that changes it."""
        shutil.copytree(self.work_dir, work_dir)
        return work_dir


def run_search_tool(config: str, options: list[str], work_dir: Path) -> SearchRun:
    run = SearchRun(config, options, work_dir, None)
    run.result = run_tool(run.command(work_dir), env_extra=ONE_THREAD, check=True)
    return run


# -- DetNAS ---------------------------------------------------------------------------
# Enough supernet training that candidates get clearly different mAPs (measured
# on the test's toy set: 0.009-0.032 over 8 candidates, all distinct), and every
# box counts, so that no candidate's mAP is an empty-result 0.
DETNAS_SUPERNET_ITERS = 250


def detnas_options(data_root, supernet_iters: int = DETNAS_SUPERNET_ITERS) -> list[str]:
    """2 generations of 4 candidates, every box counted; one supernet checkpoint."""
    return shrunk_search_options(data_root, supernet_iters) + [
        'model.test_cfg.score_thr=0.0', f'default_hooks.checkpoint.interval={supernet_iters}']


@pytest.fixture(scope='session')
def detnas_search(toy_coco, tmp_path_factory) -> SearchRun:
    return run_search_tool(TOY_CONFIG, detnas_options(toy_coco),
                           tmp_path_factory.mktemp('detnas') / 'straight')


# -- NAS-FPN --------------------------------------------------------------------------
NAS_FPN_CONFIG = 'configs/nas_fpn/nas_fpn_retinanet_toy.py'
NAS_FPN_STEPS, NAS_FPN_BATCH = 2, 2


def nas_fpn_options(data_root) -> list[str]:
    """2 controller steps of 2 architectures, 40 proxy iterations each (past the
    20-iteration warm-up), every box counted: the 4 candidates then score
    clearly apart (measured: 0.014-0.077 mAP, all distinct)."""
    return [f'data_root={data_root}/', 'train_cfg.max_iters=40', 'model.test_cfg.score_thr=0.0',
            f'strategy.num_steps={NAS_FPN_STEPS}', f'strategy.batch_size={NAS_FPN_BATCH}']


@pytest.fixture(scope='session')
def nas_fpn_search(toy_coco, tmp_path_factory) -> SearchRun:
    return run_search_tool(NAS_FPN_CONFIG, nas_fpn_options(toy_coco),
                           tmp_path_factory.mktemp('nas_fpn') / 'search')


# -- Auto-DeepLab ---------------------------------------------------------------------
AUTO_DEEPLAB_CONFIG = 'configs/auto_deeplab/auto_deeplab_toy.py'
DIFFERENTIABLE = 'differentiable_search'


def auto_deeplab_options(data_root) -> list[str]:
    """A 3-layer, F = 2 trellis; 3 epochs of 2 iterations, architecture steps from epoch 1."""
    return [f'data_root={data_root}/',
            f'{DIFFERENTIABLE}.network.num_layers=3', f'{DIFFERENTIABLE}.network.filter_multiplier=2',
            f'{DIFFERENTIABLE}.trainer.epochs=3', f'{DIFFERENTIABLE}.trainer.arch_start_epoch=1',
            f'{DIFFERENTIABLE}.trainer.max_iters_per_epoch=2', f'{DIFFERENTIABLE}.eval_interval=0']


@pytest.fixture(scope='session')
def auto_deeplab_search(toy_cityscapes, tmp_path_factory) -> SearchRun:
    return run_search_tool(AUTO_DEEPLAB_CONFIG, auto_deeplab_options(toy_cityscapes),
                           tmp_path_factory.mktemp('auto_deeplab') / 'straight')


# -- FNA ------------------------------------------------------------------------------
FNA_DETECTION = 'configs/fna/fna_retinanet_toy.py'
FNA_SEGMENTATION = 'configs/fna/fna_deeplabv3_toy.py'


@pytest.fixture(scope='session')
def fna_seed_weights(tmp_path_factory) -> Path:
    """A MobileNetV2 seed whose BatchNorms are not at their init (so remapped values show)."""
    import timm
    seed = timm.create_model('mobilenetv2_100', pretrained=False, num_classes=4)
    randomize_batch_norms(seed, seed=0)
    path = tmp_path_factory.mktemp('seed') / 'seed.pth'
    torch.save(seed.state_dict(), path)
    return path


def fna_options(config: str, data_root, seed_path) -> list[str]:
    """Two tiny stages per searchable stage (k3, e3/e6), 3 epochs of 2 iterations,
    architecture steps from epoch 1."""
    depths = '[2,2,1,1,1,1]' if config == FNA_DETECTION else '[2,2,2,1,1,1]'
    options = [f'data_root={data_root}/', f'model.backbone.seed.weights={seed_path}',
               f'model.backbone.depths={depths}', 'model.backbone.kernel_sizes=[3]',
               f'{DIFFERENTIABLE}.trainer.epochs=3', f'{DIFFERENTIABLE}.trainer.arch_start_epoch=1',
               f'{DIFFERENTIABLE}.trainer.max_iters_per_epoch=2',
               f'{DIFFERENTIABLE}.trainer.dataloader.batch_size=2',
               # A large architecture lr makes two steps move alpha visibly.
               f'{DIFFERENTIABLE}.trainer.arch_optimizer.lr=0.05']
    if config == FNA_DETECTION:
        options += [f'{split}_dataloader.dataset.data_root={data_root}/'
                    for split in ('train', 'val', 'test')]
        options += [f'val_evaluator.ann_file={data_root}/annotations/instances_heldout.json']
    return options


@pytest.fixture(scope='session')
def fna_detection_search(toy_coco, fna_seed_weights, tmp_path_factory) -> SearchRun:
    return run_search_tool(FNA_DETECTION, fna_options(FNA_DETECTION, toy_coco, fna_seed_weights),
                           tmp_path_factory.mktemp('fna_det') / 'straight')


@pytest.fixture(scope='session')
def fna_segmentation_search(toy_cityscapes, fna_seed_weights, tmp_path_factory) -> SearchRun:
    return run_search_tool(FNA_SEGMENTATION,
                           fna_options(FNA_SEGMENTATION, toy_cityscapes, fna_seed_weights),
                           tmp_path_factory.mktemp('fna_seg') / 'straight')


# -- AutoGAN --------------------------------------------------------------------------
AUTOGAN_CONFIG = 'configs/autogan/autogan_cifar10_toy.py'
AUTOGAN_STEPS = 2  # controller steps per search iteration
AUTOGAN_STAGE_STEPS = [2 * AUTOGAN_STEPS] * 3
AUTOGAN_NUM_CANDIDATES, AUTOGAN_TOP_K = 3, 2


def autogan_options(data_root) -> list[str]:
    """Two search iterations of 2 controller steps per stage, 12 D steps each, a
    200-image reward; a 5-step window with a threshold every window passes,
    so the dynamic reset fires (once the G window is full) in every stage."""
    return [f'estimator.real_data.data_root={data_root}',
            f'estimator.reward.extractor.weights_path={data_root}/toy_classifier.pth',
            f'strategy.stage_steps=[{",".join(map(str, AUTOGAN_STAGE_STEPS))}]',
            f'strategy.num_candidates={AUTOGAN_NUM_CANDIDATES}', f'strategy.top_k={AUTOGAN_TOP_K}',
            f'strategy.controller.baseline_reset_steps={AUTOGAN_STEPS}',
            f'estimator.rounds_per_iteration={AUTOGAN_STEPS}', 'estimator.shared_d_steps=12',
            'estimator.gan.reset_window=2', 'estimator.gan.reset_threshold=100.0',
            'estimator.reward.num_images=200', 'estimator.reward.batch_size=100']


@pytest.fixture(scope='session')
def autogan_search(toy_cifar10, tmp_path_factory) -> SearchRun:
    return run_search_tool(AUTOGAN_CONFIG, autogan_options(toy_cifar10),
                           tmp_path_factory.mktemp('autogan_search') / 'straight')
