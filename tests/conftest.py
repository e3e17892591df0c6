import json
import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
TOY_CONFIG = 'configs/detnas/detnas_retinanet_toy.py'


@pytest.fixture(scope='session')
def toy_coco(tmp_path_factory) -> Path:
    """A small toy COCO set (16 train, 8 val, 8 held-out images of 128 px), shared by the session."""
    from detection.toy_data import make_coco
    return make_coco(tmp_path_factory.mktemp('toy_coco'), num_train=16, num_val=8,
                     num_heldout=8, seed=0)


@pytest.fixture(scope='session')
def toy_cityscapes(tmp_path_factory) -> Path:
    """A small toy Cityscapes set (8 train, 4 val street scenes of 64x128), shared by the session."""
    from segmentation.toy_data import make_cityscapes
    return make_cityscapes(tmp_path_factory.mktemp('toy_cityscapes'), num_train=8, num_val=4,
                           seed=0)


def shrunk_search_options(data_root: Path, supernet_iters: int = 60) -> list[str]:
    """--cfg-options that shrink the toy DetNAS search for tests: 2 generations of 4."""
    return [
        f'data_root={data_root}/',
        f'train_cfg.max_iters={supernet_iters}',
        'default_hooks.checkpoint.interval=20',
        'strategy.population_size=4', 'strategy.max_generations=2', 'strategy.top_k=2',
        'strategy.num_mutation=1', 'strategy.num_crossover=1',
        'estimator.bn_recalibration_batches=2',
    ]


# Same thread count in every process, so CPU float reductions match across runs.
ONE_THREAD = {'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def read_candidates(work_dir) -> list[dict]:
    """The records of a search's ``candidates.jsonl``."""
    return [json.loads(line) for line in (Path(work_dir) / 'candidates.jsonl').read_text().splitlines()]


def is_png(path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_SIGNATURE


def assert_scores_vary(candidates: list[dict]) -> None:
    """An equality of near-constant scores proves nothing: the runs compared must rank."""
    scores = {c['score'] for c in candidates if c['score']}
    assert len(scores) >= 3, f'fewer than 3 distinct non-zero scores: {sorted(scores)}'


def kill_when(args: list[str], ready, env_extra: dict | None = None, timeout: int = 600) -> None:
    """Start ``python tools/...`` and SIGKILL it once ``ready()`` is true; fail if it
    finished (or failed) first."""
    import signal
    import time
    command = [sys.executable, *args[1:]] if args[0] == 'python' else args
    process = subprocess.Popen(command, cwd=REPO, env=dict(os.environ, **(env_extra or {})),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None and not ready():
        time.sleep(0.1)
    assert process.poll() is None, 'the search finished (or failed) before it could be killed'
    process.send_signal(signal.SIGKILL)
    process.wait()


def kill_search_after(args: list[str], work_dir: Path, num_candidates: int,
                      env_extra: dict | None = None) -> None:
    """Start ``python tools/search.py ...`` and SIGKILL it once ``candidates.jsonl``
    holds ``num_candidates`` lines, mid-search; fail if it finished first."""
    candidates_file = Path(work_dir) / 'candidates.jsonl'

    def ready() -> bool:
        return (candidates_file.exists()
                and len(candidates_file.read_text().splitlines()) >= num_candidates)
    kill_when(args, ready, env_extra)
    assert not (Path(work_dir) / 'best_arch.json').exists()


def run_tool(args: list[str], env_extra: dict | None = None, timeout: int = 600,
             check: bool = False) -> subprocess.CompletedProcess:
    """Run ``python tools/...`` (or torchrun) from the repository root."""
    env = dict(os.environ, **(env_extra or {}))
    command = args if args[0] != 'python' else [sys.executable, *args[1:]]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f'{" ".join(args)} failed ({result.returncode}):\n'
                             f'{result.stdout[-3000:]}\n{result.stderr[-3000:]}')
    return result


def assert_one_line_error(result, *expected):
    """A tool's process printed one ``error:`` line holding ``expected`` and exited with 2."""
    assert result.returncode == 2, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr, result.stderr[-2000:]
    error_lines = [line for line in result.stderr.splitlines() if line.startswith('error: ')]
    assert len(error_lines) == 1, result.stderr[-2000:]
    assert_one_line(error_lines[0], *expected)


def assert_one_line(message: str, *expected) -> None:
    assert '\n' not in message.strip(), message
    for text in expected:
        assert text in message, message


def search_error(work_dir, *options, config=TOY_CONFIG, resume=False) -> str:
    """The one-line NasError that tools/search.py's run_search raises, in this process."""
    from nas_tasks.cli import parse_cfg_options
    from nas_tasks.errors import NasError
    from nas_tasks.search import run_search
    with pytest.raises(NasError) as error:
        run_search(config, str(work_dir), resume, parse_cfg_options(list(options)), 'none')
    return str(error.value)


def train_error(config, work_dir, *options) -> str:
    """The one-line NasError that tools/train.py raises (building or starting its Runner),
    in this process."""
    from nas_tasks.cli import parse_cfg_options
    from nas_tasks.errors import NasError
    from nas_tasks.runner import build_runner
    with pytest.raises(NasError) as error:
        build_runner(config, str(work_dir), 'none', parse_cfg_options(list(options))).train()
    return str(error.value)


def snapshot(directory):
    """Every file under ``directory`` by (inode, size, modification time): a file written
    again, even with the same bytes, changes it (an atomic write replaces the inode), and
    the supernet checkpoints of a search need not be read."""
    return {p.relative_to(directory): (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns)
            for p in directory.rglob('*') if p.is_file()}


def fresh_python_json(code: str):
    """Runs ``code`` in a fresh interpreter from the repository root and returns the JSON
    its last line of stdout prints."""
    result = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def tool_main(name: str):
    """``main`` of ``tools/<name>.py``, to call in this process: bad input raises its
    NasError instead of exiting (run_cli's one-line conversion is checked once per tool
    in a subprocess)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f'tool_{name}', REPO / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def openmmlab_tool(package: str, name: str) -> str:
    """The path of an OpenMMLab package's own tool, e.g. ('mmseg', 'train')."""
    import importlib
    module = importlib.import_module(package)
    return str(Path(module.__file__).parent / '.mim' / 'tools' / f'{name}.py')


def free_port() -> str:
    """A TCP port nobody listens on now, for torchrun's rendezvous."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return str(probe.getsockname()[1])


def randomize_batch_norms(model, seed):
    """Distinct BN affine params and running stats, so that a wrong weight
    mapping cannot go unnoticed."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            size = module.num_features
            module.weight.data = 0.5 + torch.rand(size, generator=generator)
            module.bias.data = 0.1 * torch.randn(size, generator=generator)
            module.running_mean = 0.1 * torch.randn(size, generator=generator)
            module.running_var = 0.5 + torch.rand(size, generator=generator)


@pytest.fixture(scope='session')
def toy_cifar10(tmp_path_factory) -> Path:
    """The toy CIFAR-10 at its default size (100 train, 20 test images per class) with the
    toy IS classifier trained on it, shared by the session.

    Returns the data root, which holds ``cifar-10-batches-py/`` and ``toy_classifier.pth``
    (weights for ``dict(type='ToyClassifier', weights_path=root / 'toy_classifier.pth')``).
    """
    from gan.toy_classifier import train_toy_classifier
    from gan.toy_data import make_cifar10
    root = make_cifar10(tmp_path_factory.mktemp('toy_cifar10'), seed=0)
    with one_torch_thread():
        train_toy_classifier(root)
    return root


@contextmanager
def one_torch_thread():
    """One intra-op torch thread for small convs: on a busy 2-core machine a second thread
    mostly waits (3 epochs of the toy classifier: 5 s on one thread, 35-55 s on two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# The session's shared toy searches (one per search path): tests/search_runs.py.
pytest_plugins = ['search_runs']

# Under pytest-xdist (pyproject.toml's -n 2), every test that reads a shared toy search
# or the trained toy classifier runs on one worker, so each runs once a session: the
# fixture names the test's group (--dist loadgroup).
SHARED_RUN_GROUPS = {
    'detnas_search': 'detnas', 'nas_fpn_search': 'nas_fpn',
    'auto_deeplab_search': 'auto_deeplab', 'fna_seed_weights': 'fna',
    'autogan_search': 'autogan', 'toy_cifar10': 'autogan',
}


def pytest_itemcollected(item):
    """Marks the test's group as it is collected, before xdist reads the groups."""
    if item.get_closest_marker('xdist_group'):
        return
    groups = sorted({SHARED_RUN_GROUPS[name] for name in item.fixturenames
                     if name in SHARED_RUN_GROUPS})
    if groups:
        item.add_marker(pytest.mark.xdist_group(groups[0]))


if os.environ.get('PYTEST_XDIST_WORKER'):
    # Two workers share two cores: one torch thread in each and in every process they
    # start. A second OpenMP thread mostly spins while the other worker computes (a
    # 3 s test took 61 s beside a 2-thread subprocess).
    torch.set_num_threads(1)
    os.environ.update(ONE_THREAD)


def assert_seeded_restartable_miou_training(standalone, draws, work_dir) -> None:
    """A segmentation diagnosis recipe (``keep_checkpoints``, 4 iterations, a checkpoint every
    2) scores the search's mIoU, trains two drawn architectures differently, the same one
    alike in a fresh folder, and resumes a finished training from its last checkpoint."""
    import random
    arch, other = draws.draw(random.Random(0)), draws.draw(random.Random(1))
    first = standalone.train_and_score(arch, work_dir / 'first')
    assert first.score == first.metrics['mIoU'] and 0 <= first.score <= 100
    assert {'aAcc', 'mAcc', 'train_loss'} <= set(first.metrics)
    assert (work_dir / 'first' / 'iter_4.pth').is_file()
    # Another architecture trains otherwise, so the equalities below can fail.
    assert standalone.train_and_score(other, work_dir / 'other').metrics['train_loss'] \
        != first.metrics['train_loss']
    # The same architecture in a fresh folder: the same training and score.
    assert standalone.train_and_score(arch, work_dir / 'again').metrics == first.metrics
    # Restarted in its folder, the finished training resumes from its last checkpoint
    # (nothing left to train: no loss logged) and scores the same.
    restarted = standalone.train_and_score(arch, work_dir / 'first')
    assert 'train_loss' not in restarted.metrics and restarted.score == first.score


def built_diagnose_section(cfg):
    """The random architectures a differentiable search config's ``diagnose`` section names
    (built) and its settings, checked as the search and ``tools/diagnose.py --random`` check them."""
    from nas_tasks.builder import build_component
    from nas_tasks.diagnostics import RANDOM_ARCHITECTURES
    from nas_tasks.diagnostics.diagnosis import DiagnoseSettings
    from nas_tasks.search import check_search_keys
    check_search_keys(cfg)  # the search itself accepts the section
    settings = DiagnoseSettings.from_config(cfg)
    draws = build_component(RANDOM_ARCHITECTURES, settings.random_architectures,
                            'diagnose.random_architectures', default_args=dict(config=cfg))
    return draws, settings
