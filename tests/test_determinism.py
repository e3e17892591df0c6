"""Deterministic mode (opt in): search.deterministic=True ('warn') /
differentiable_search.deterministic=True sets torch's flags before any CUDA work, and the
Runners the search builds agree; anything but True, False or 'warn' is refused in one line."""
import os

import pytest
import torch

from conftest import TOY_CONFIG, assert_one_line
from nas_tasks import determinism

FNA_TOY_CONFIG = 'configs/fna/fna_retinanet_toy.py'


@pytest.fixture
def restored_torch_flags():
    """Deterministic mode changes process-wide settings: put them back for the other tests."""
    saved = (torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark, os.environ.get('CUBLAS_WORKSPACE_CONFIG'))
    yield
    algorithms, warn_only, cudnn_deterministic, cudnn_benchmark, workspace = saved
    torch.use_deterministic_algorithms(algorithms, warn_only=warn_only)
    torch.backends.cudnn.deterministic = cudnn_deterministic
    torch.backends.cudnn.benchmark = cudnn_benchmark
    if workspace is None:
        os.environ.pop('CUBLAS_WORKSPACE_CONFIG', None)
    else:
        os.environ['CUBLAS_WORKSPACE_CONFIG'] = workspace
    determinism.set_deterministic(False)


def deterministic_flags() -> tuple:
    return (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
            torch.backends.cudnn.benchmark, os.environ.get('CUBLAS_WORKSPACE_CONFIG'))


def settings_applied(tmp_path, *options, config=TOY_CONFIG) -> str:
    """run_search up to the launcher (an unknown one stops it just after the setting is
    applied, before anything is built); returns that one-line error."""
    from nas_tasks.cli import parse_cfg_options
    from nas_tasks.errors import NasError
    from nas_tasks.search import run_search
    with pytest.raises(NasError) as error:
        run_search(config, str(tmp_path / 'w'), False, parse_cfg_options(list(options)),
                   'no-such-launcher')
    return str(error.value)


def test_the_search_setting_sets_torchs_flags_and_the_runners_randomness(restored_torch_flags,
                                                                         tmp_path):
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.benchmark = True
    os.environ.pop('CUBLAS_WORKSPACE_CONFIG', None)
    assert deterministic_flags() == (False, False, True, None)
    assert determinism.runner_randomness(3) == dict(seed=3, deterministic=False)
    assert 'no-such-launcher' in settings_applied(tmp_path, 'search.deterministic=True')
    assert deterministic_flags() == (True, True, False, ':4096:8')
    assert not torch.is_deterministic_algorithms_warn_only_enabled()
    assert determinism.runner_randomness(3) == dict(seed=3, deterministic=True)


def test_a_differentiable_search_takes_it_from_its_own_settings(restored_torch_flags, tmp_path):
    torch.use_deterministic_algorithms(False)
    error = settings_applied(tmp_path, 'differentiable_search.deterministic=True',
                             config=FNA_TOY_CONFIG)
    assert 'no-such-launcher' in error
    assert torch.are_deterministic_algorithms_enabled() and determinism.deterministic_enabled()


def test_warn_only_makes_torch_warn_instead_of_stopping(restored_torch_flags, tmp_path):
    settings_applied(tmp_path, "search.deterministic='warn'")
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    # mmengine's deterministic=True would make it strict again: the Runners leave it alone.
    assert determinism.runner_randomness(3) == dict(seed=3, deterministic=False)


def test_off_by_default_leaves_torch_as_it_is(restored_torch_flags, tmp_path):
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.benchmark = True
    settings_applied(tmp_path)
    assert not torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.benchmark
    assert not determinism.deterministic_enabled()


@pytest.mark.parametrize('option, config, where', [
    ('search.deterministic=1', TOY_CONFIG, 'search.deterministic'),
    ("differentiable_search.deterministic='yes'", FNA_TOY_CONFIG,
     'differentiable_search.deterministic'),
])
def test_a_value_other_than_true_or_false_is_refused_in_one_line(restored_torch_flags, tmp_path,
                                                                 option, config, where):
    error = settings_applied(tmp_path, option, config=config)
    assert_one_line(error, f"{where} must be True, False or 'warn', got ")
    assert not determinism.deterministic_enabled()
