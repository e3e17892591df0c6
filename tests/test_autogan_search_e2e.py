"""The AutoGAN search end to end through tools/search.py on the toy CIFAR-10:
every stage, rewards from the trained toy classifier, dynamic resets on the
plots, the found generator's files, a kill and --resume, and the missing-
weights stop of the real config."""
import json

import pytest

from conftest import (ONE_THREAD, assert_one_line, assert_scores_vary, is_png, kill_search_after,
                      read_candidates, run_tool, search_error)
from search_runs import (AUTOGAN_CONFIG, AUTOGAN_NUM_CANDIDATES, AUTOGAN_STAGE_STEPS, AUTOGAN_TOP_K,
                         autogan_options)

SEARCH_CONFIG = AUTOGAN_CONFIG
PAPER_CONFIG = 'configs/autogan/autogan_cifar10.py'
STAGE_STEPS, NUM_CANDIDATES, TOP_K = AUTOGAN_STAGE_STEPS, AUTOGAN_NUM_CANDIDATES, AUTOGAN_TOP_K


@pytest.fixture
def search_dir(autogan_search):
    return autogan_search.work_dir


def test_search_runs_every_stage_and_writes_the_found_generator(search_dir):
    from gan.autogan import AutoGANSpace
    space = AutoGANSpace()
    candidates = read_candidates(search_dir)
    # A controller step per round, plus the candidates scored at each stage's end.
    assert len(candidates) == sum(STAGE_STEPS) + 3 * NUM_CANDIDATES
    assert [space.stage_of(c['arch']) for c in candidates] == sorted(
        space.stage_of(c['arch']) for c in candidates)
    assert {space.stage_of(c['arch']) for c in candidates} == {0, 1, 2}
    assert_scores_vary(candidates)
    assert all(1.0 <= c['score'] <= 10.0 for c in candidates)  # an IS over 10 classes

    best = json.loads((search_dir / 'best_arch.json').read_text())
    top = json.loads((search_dir / 'top_candidates.json').read_text())
    assert len(top) == TOP_K and space.is_complete(top[0]['arch'])
    assert best['arch'] == top[0]['arch'] and top[0]['score'] >= top[1]['score']
    for name in ('best_samples.png', 'best_generator.png', 'plots/controller_rewards.png',
                 'plots/score_per_round.png'):
        assert is_png(search_dir / name), name
    assert (search_dir / 'best_generator.pth').is_file()


def test_dynamic_resets_are_logged(search_dir):
    log = (search_dir / 'search.log').read_text()
    assert log.count('collapsed after') >= 2
    assert log.count('dynamic reset of the shared G, D and optimisers') >= 2


@pytest.mark.slow
def test_kill_and_resume_end_like_an_uninterrupted_search(search_dir, toy_cifar10, tmp_path):
    work_dir = tmp_path / 'killed'
    command = ['python', 'tools/search.py', SEARCH_CONFIG, '--work-dir', str(work_dir),
               '--cfg-options', *autogan_options(toy_cifar10)]
    # Killed in stage 1, after a reset and with shared weights, windows and controller to restore.
    kill_search_after(command, work_dir, STAGE_STEPS[0] + NUM_CANDIDATES + 1, ONE_THREAD)
    run_tool([*command, '--resume'], env_extra=ONE_THREAD, check=True)
    straight, resumed = read_candidates(search_dir), read_candidates(work_dir)
    assert_scores_vary(straight)
    assert [(c['arch'], c['score']) for c in resumed] == [(c['arch'], c['score']) for c in straight]
    for name in ('best_arch.json', 'top_candidates.json'):
        assert (work_dir / name).read_text() == (search_dir / name).read_text()
    assert (work_dir / 'best_generator.pth').read_bytes() == (search_dir / 'best_generator.pth').read_bytes()


@pytest.mark.parametrize('config', [PAPER_CONFIG, SEARCH_CONFIG])
def test_the_configs_controllers_start_as_the_official_one(config):
    """A zero first input and PyTorch's default initialisations (the official
    Controller), not ENAS's learned input and U(-0.1, 0.1): at hidden size 100 the
    LSTM and the heads draw from U(-0.1, 0.1) either way, the embeddings do not."""
    import torch
    from mmengine.config import Config

    from gan.autogan import AutoGANSpace
    from nas_tasks.registry import STRATEGIES
    strategy = STRATEGIES.build(dict(Config.fromfile(config).strategy, space=AutoGANSpace()))
    controller = strategy.controller.controller
    assert controller.start is None and 'start' not in dict(controller.named_parameters())
    embeddings = torch.cat([embedding.weight.flatten() for embedding in controller.embeddings])
    assert embeddings.std().item() == pytest.approx(1.0, rel=0.2)  # nn.Embedding's N(0, 1)


def test_the_paper_config_without_inception_weights_stops_with_one_line(tmp_path):
    message = search_error(tmp_path / 'w', f'estimator.real_data.data_root={tmp_path}', config=PAPER_CONFIG)
    assert_one_line(message, 'weights-inception-2015-12-05-6726825d.pth', 'torch-fidelity')
    assert not (tmp_path / 'w').exists()


@pytest.mark.slow  # a whole search beside the shared one
def test_search_on_a_folder_of_png_images(toy_cifar10, tmp_path):
    """The shrunk toy search with its real images read from PNG files in nested folders
    (``GANImages(source='folder')``) instead of CIFAR-10's batches."""
    from PIL import Image

    from gan.cifar10_batches import CIFAR10PythonBatches
    train = CIFAR10PythonBatches(toy_cifar10, train=True)
    images = tmp_path / 'images'
    for index, (pixels, label) in enumerate(zip(train.data, train.targets)):
        path = images / f'class_{label}' / f'{index:04d}.png'
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
    work_dir = tmp_path / 'search'
    run_tool(['python', 'tools/search.py', SEARCH_CONFIG, '--work-dir', str(work_dir), '--cfg-options',
              *autogan_options(toy_cifar10), 'estimator.real_data.source=folder',
              f'estimator.real_data.data_root={images}'], env_extra=ONE_THREAD, check=True)
    candidates = read_candidates(work_dir)
    assert len(candidates) == sum(STAGE_STEPS) + 3 * NUM_CANDIDATES
    assert_scores_vary(candidates)
    assert json.loads((work_dir / 'best_arch.json').read_text())['arch'] in [c['arch'] for c in candidates]
