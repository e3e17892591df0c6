"""Training and testing a found AutoGAN generator with tools/train.py and tools/test.py.

The runs use the toy CIFAR-10 cut to 10 images a class (7 D steps an epoch at
batch 16) with gf = df = latent = 16, scored through the toy classifier.
"""
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.optim import OptimWrapper, OptimWrapperDict
from PIL import Image

from conftest import free_port, run_tool, train_error

CONFIG = 'configs/autogan/autogan_cifar10_train_toy.py'
WIDTH = 16
BATCH = 16
IMAGES_PER_CLASS = 10
STEPS_PER_EPOCH = math.ceil(10 * IMAGES_PER_CLASS / BATCH)  # 7
EPOCHS = 2
EVAL_IMAGES = 200


@pytest.fixture(scope='module')
def data_root(toy_cifar10, tmp_path_factory) -> Path:
    """The first 10 images a class of the session's toy CIFAR-10, with its toy classifier."""
    from gan.toy_data import make_cifar10
    root = make_cifar10(tmp_path_factory.mktemp('toy_cifar10_small'),
                        train_per_class=IMAGES_PER_CLASS, test_per_class=2, seed=0)
    shutil.copy(toy_cifar10 / 'toy_classifier.pth', root / 'toy_classifier.pth')
    return root


def options(root: Path, *extra: str) -> list[str]:
    """--cfg-options pointing the toy config at ``root`` and shrinking it."""
    data = [f'train_dataloader.dataset.data_root={root}']
    for split in ('val', 'test'):
        data += [f'{split}_evaluator.real_data.data_root={root}',
                 f'{split}_evaluator.extractor.weights_path={root}/toy_classifier.pth',
                 f'{split}_dataloader.dataset.num_images={EVAL_IMAGES}',
                 f'{split}_dataloader.dataset.latent_dim={WIDTH}']
    return ['--cfg-options', *data,
            f'model.generator.gf_dim={WIDTH}', f'model.generator.latent_dim={WIDTH}',
            f'model.discriminator.df_dim={WIDTH}', f'model.gen_batch_size={BATCH}',
            f'train_dataloader.batch_size={BATCH}', f'train_cfg.max_epochs={EPOCHS}', *extra]


def train(root: Path, work_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_tool(['python', 'tools/train.py', CONFIG, '--work-dir', str(work_dir),
                     *options(root, *extra)], check=True)


def scores_printed_by_test_tool(root: Path, checkpoint: Path,
                                work_dir: Path) -> tuple[float, float, float]:
    """(IS, IS std, FID) that tools/test.py prints for ``checkpoint``."""
    result = run_tool(['python', 'tools/test.py', CONFIG, str(checkpoint), '--work-dir',
                       str(work_dir), *options(root)], check=True)
    number = r'([-+0-9.e]+|nan|inf)'
    scores = re.search(rf'^IS: {number} ± {number}$', result.stdout, re.MULTILINE)
    fid = re.search(rf'^FID: {number}$', result.stdout, re.MULTILINE)
    assert scores and fid, result.stdout[-2000:]
    assert not re.search(r'^IS_std:', result.stdout, re.MULTILINE), 'the std is printed with IS'
    return float(scores[1]), float(scores[2]), float(fid[1])


def validation_scores(work_dir: Path) -> dict[int, dict]:
    """Epoch -> the IS/FID logged by the validation after it."""
    [scalars] = work_dir.glob('*/vis_data/scalars.json')
    lines = [json.loads(line) for line in scalars.read_text().splitlines()]
    return {line['step']: line for line in lines if 'FID' in line}


@pytest.fixture(scope='module')
def trained(data_root, tmp_path_factory) -> Path:
    work_dir = tmp_path_factory.mktemp('autogan_train')
    train(data_root, work_dir)
    return work_dir


def test_preset_trains_keeps_the_best_checkpoint_by_fid_and_writes_samples(trained):
    scores = validation_scores(trained)
    assert sorted(scores) == list(range(1, EPOCHS + 1))
    fids = [scores[epoch]['FID'] for epoch in sorted(scores)]
    assert all(math.isfinite(fid) for fid in fids) and len(set(fids)) == EPOCHS, fids
    best_epoch = min(scores, key=lambda epoch: scores[epoch]['FID'])
    assert [path.name for path in trained.glob('best_*.pth')] == [f'best_FID_epoch_{best_epoch}.pth']
    assert (trained / f'epoch_{EPOCHS}.pth').is_file()

    state = torch.load(trained / f'epoch_{EPOCHS}.pth', map_location='cpu')['state_dict']
    d_steps = EPOCHS * STEPS_PER_EPOCH
    assert int(state['num_d_steps']) == d_steps
    # One EMA update per G step (D steps 0, 5, 10, ...) after the one taking the initial weights.
    assert int(state['generator_ema.steps']) == 1 + math.ceil(d_steps / 5)
    assert any(key.startswith('generator_ema.module.cells.') for key in state)

    for epoch in range(1, EPOCHS + 1):
        with Image.open(trained / 'samples' / f'iter_{epoch * STEPS_PER_EPOCH}.png') as grid:
            assert grid.format == 'PNG' and grid.size[0] > 8 * 32
    assert not list((trained / 'samples').glob('.*.tmp'))


def test_test_tool_reports_the_checkpoints_scores(trained, data_root, tmp_path):
    best = next(trained.glob('best_FID_epoch_*.pth'))
    epoch = int(best.stem.rsplit('_', 1)[1])
    is_mean, is_std, fid = scores_printed_by_test_tool(data_root, best, tmp_path)
    assert all(math.isfinite(value) for value in (is_mean, is_std, fid)) and is_std > 0
    # The same EMA weights on the same noise: what the best checkpoint was chosen by.
    logged = validation_scores(trained)[epoch]
    assert (is_mean, is_std, fid) == pytest.approx((logged['IS'], logged['IS_std'], logged['FID']),
                                                   rel=1e-9)
    assert (tmp_path / 'samples' / f'test_{best.stem}.png').is_file()

    # Scored the same way, the checkpoint's weights give the tool's numbers and the
    # generator before training others (a dozen D steps in, not yet better ones).
    model = build_model(width=WIDTH)
    untrained = evaluate(model, data_root)
    model.load_state_dict(torch.load(best, map_location='cpu')['state_dict'])
    assert evaluate(model, data_root) == pytest.approx((is_mean, is_std, fid), rel=1e-6)
    assert untrained[0] != pytest.approx(is_mean, rel=1e-3)
    assert untrained[2] != pytest.approx(fid, rel=1e-3)


def evaluate(model, root: Path) -> tuple[float, float, float]:
    """(IS, IS std, FID) of ``model`` through the toy config's metric, as tools/test.py scores it."""
    from gan.datasets import LatentNoise
    from gan.is_fid_metric import ISFIDMetric
    metric = ISFIDMetric(
        extractor=dict(type='ToyClassifier', weights_path=f'{root}/toy_classifier.pth'),
        real_data=dict(type='GANImages', source='cifar10_batches', data_root=str(root)))
    noise = LatentNoise(EVAL_IMAGES, latent_dim=WIDTH, seed=0).noise
    for batch in noise.split(100):
        metric.process(None, model.val_step(dict(noise=batch)))
    scores = metric.compute_metrics(metric.results)
    return scores['IS'], scores['IS_std'], scores['FID']


def test_missing_inception_weights_stop_before_training(data_root, tmp_path):
    weights = tmp_path / 'weights' / 'weights-inception-2015-12-05-6726825d.pth'
    message = train_error(CONFIG, tmp_path / 'w',
                          *options(data_root, 'val_evaluator.extractor.type=InceptionV3Compat',
                                   f'val_evaluator.extractor.weights_path={weights}')[1:])
    assert message == (
        f'Inception weights not found: download weights-inception-2015-12-05-6726825d.pth '
        f'(torch-fidelity https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/'
        f'weights-inception-2015-12-05-6726825d.pth) and put it at {weights}')
    assert not list((tmp_path / 'w').glob('**/*.pth'))


# -- the training model itself ------------------------------------------------------------

def build_model(n_critic: int = 5, ema_momentum: float = 0.1, width: int = 8,
                arch: str = 'autogan_cifar10_a'):
    from gan.autogan.final_training import AutoGANTrainingModel
    torch.manual_seed(0)
    return AutoGANTrainingModel(
        n_critic=n_critic, gen_batch_size=4, ema_momentum=ema_momentum,
        generator=dict(type='AutoGANGenerator', arch=arch, gf_dim=width, latent_dim=WIDTH),
        discriminator=dict(type='AutoGANDiscriminator', df_dim=width))


def optimisers(model) -> OptimWrapperDict:
    return OptimWrapperDict(**{
        name: OptimWrapper(torch.optim.Adam(getattr(model, name).parameters(), lr=1e-3,
                                            betas=(0.0, 0.9)))
        for name in ('generator', 'discriminator')})


def parameters(network) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in network.named_parameters()}


def real_batch() -> dict:
    return dict(images=torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1)


def test_the_generator_steps_every_n_critic_th_d_step():
    model = build_model(n_critic=3, arch='autogan_cifar10_c')  # c has BN in cell 1
    optim = optimisers(model)
    g_steps = []
    for step in range(8):
        generator = parameters(model.generator)
        outputs = model.train_step(real_batch(), optim)
        g_moved = any(not torch.equal(p, generator[n]) for n, p in model.generator.named_parameters())
        assert g_moved == ('loss_g' in outputs) and 'loss_d' in outputs
        g_steps += [step] * g_moved
        # A G step leaves no gradient in D (it would add to the next D step's).
        assert all(p.grad is None or not p.grad.any() for p in model.discriminator.parameters())
    assert g_steps == [0, 3, 6]
    assert adam_steps(optim['discriminator']) == 8 and adam_steps(optim['generator']) == 3


def adam_steps(optim_wrapper) -> int:
    return {int(state['step']) for state in optim_wrapper.optimizer.state.values()}.pop()


def test_the_ema_averages_the_generator_after_each_g_step():
    momentum = 0.1
    model = build_model(n_critic=2, ema_momentum=momentum)
    ema = model.generator_ema.module
    initial = parameters(model.generator)
    assert all(torch.equal(p, initial[n]) for n, p in ema.named_parameters())  # starts at init
    optim = optimisers(model)
    for step in range(4):
        before = parameters(ema)
        model.train_step(real_batch(), optim)
        after = parameters(model.generator)
        for name, averaged in ema.named_parameters():
            expected = (1 - momentum) * before[name] + momentum * after[name] if step % 2 == 0 \
                else before[name]
            torch.testing.assert_close(averaged, expected, rtol=1e-6, atol=1e-7)
    assert any(not torch.equal(p, after[n]) for n, p in ema.named_parameters())
    # Evaluation draws from the EMA generator, not from the trained one.
    noise = torch.randn(2, WIDTH)
    ema.eval()
    torch.testing.assert_close(model(noise), ema(noise))
    assert model(noise, mode='predict').dtype == torch.uint8


@pytest.mark.slow
def test_a_best_arch_json_trains_under_torchrun_as_ddp(data_root, tmp_path):
    """Two CPU processes train the generator of a best_arch.json: G and D each in DDP, their
    weights and the EMA equal on both ranks."""
    from gan.autogan.generator import AutoGANGenerator
    from gan.autogan.space import PRESETS, AutoGANSpace
    arch_file = tmp_path / 'search' / 'best_arch.json'
    AutoGANSpace().save_arch(arch_file, PRESETS['autogan_cifar10_b'], {'IS': 1.0})
    script = Path(__file__).with_name('ddp_gan_training.py')
    work_dir = tmp_path / 'train'
    result = run_tool([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
                       '--master_port', free_port(), str(script), CONFIG, str(work_dir),
                       *options(data_root, 'train_cfg.max_epochs=1',
                                f'model.generator.arch={arch_file}')[1:]], check=True)
    reports = [json.loads(line[len('DDP '):]) for line in result.stdout.splitlines()
               if line.startswith('DDP ')]
    assert len(reports) == 2
    assert {report['wrapper'] for report in reports} == {'MMSeparateDistributedDataParallel'}
    assert {report['generator'] for report in reports} == {'MMDistributedDataParallel'}
    # Each rank trains on its half of every batch; equal weights mean averaged gradients.
    assert reports[0]['sums'] == reports[1]['sums']
    assert reports[0]['d_steps'] == math.ceil(10 * IMAGES_PER_CLASS / (2 * BATCH))

    state = torch.load(work_dir / 'epoch_1.pth', map_location='cpu')['state_dict']
    keys = {key[len('generator.'):] for key in state if key.startswith('generator.')}
    # b differs from the default preset a by the shortcut of cell 3.
    assert keys == set(AutoGANGenerator(arch_file, gf_dim=WIDTH).state_dict())
    assert keys != set(AutoGANGenerator('autogan_cifar10_a', gf_dim=WIDTH).state_dict())
