"""AutoGAN's standalone recipe for tools/diagnose.py (gan/autogan/diagnose.py): a generator
trained by the final-training recipe on the search's images, scored as the search
rewarded it (IS through the reward's extractor; FID beside it)."""
import random

import pytest

from conftest import REPO, assert_one_line
from search_runs import AUTOGAN_CONFIG
from test_autogan_final_training import data_root  # noqa: F401  (the small toy CIFAR-10 fixture)

TRAIN_CONFIG = 'configs/autogan/autogan_cifar10_train_toy.py'
WIDTH = 16


def search_config(**options):
    from nas_tasks.builder import load_config
    from nas_tasks.modules import register_all_modules
    register_all_modules()
    return load_config(str(REPO / AUTOGAN_CONFIG), options)


def recipe(cfg, **settings):
    from nas_tasks.builder import build_component
    from nas_tasks.diagnostics import STANDALONE_RECIPES
    from nas_tasks.registry import SPACES
    space = build_component(SPACES, cfg.search_space, 'search_space')
    section = {**cfg.diagnose.standalone, **settings}
    return build_component(STANDALONE_RECIPES, section, 'diagnose.standalone',
                           default_args=dict(config=cfg, space=space, seed=1)), space


def test_the_toy_configs_recipe_trains_on_the_search_images_and_scores_its_reward():
    cfg = search_config(**{'estimator.real_data.data_root': '/somewhere/else',
                           'estimator.reward.num_images': 300, 'estimator.reward.splits': 3})
    standalone, _ = recipe(cfg)
    train = standalone.train_cfg
    assert standalone.score_name == 'IS'
    # The final training's model and schedule ...
    assert train.model.type == 'AutoGANTrainingModel' and train.train_cfg.max_epochs == 3
    # ... on the search's real images, scored by the search's reward setting.
    assert train.train_dataloader.dataset == cfg.estimator.real_data
    assert train.train_dataloader.dataset.data_root == '/somewhere/else'
    assert train.val_evaluator.real_data == cfg.estimator.real_data
    assert train.val_evaluator.extractor == cfg.estimator.reward.extractor
    assert train.val_evaluator.extractor.type == 'ToyClassifier'
    assert (train.val_evaluator.splits, train.val_dataloader.dataset.num_images) == (3, 300)
    # Validated once, by the recipe, after the last epoch.
    assert train.train_cfg.val_begin > train.train_cfg.max_epochs


@pytest.mark.parametrize('options, settings, message', [
    ({'estimator.real_data': None}, {}, 'estimator.real_data, a dataset config'),
    ({}, dict(train_config=str(REPO / 'configs/fna/deeplabv3_fna_finetune_toy.py')),
     'must be an AutoGAN final-training config'),
])
def test_a_wrong_config_is_one_line(options, settings, message):
    from nas_tasks.errors import NasError
    cfg = search_config(**options)
    with pytest.raises(NasError) as error:
        recipe(cfg, **settings)
    assert_one_line(str(error.value), message)


@pytest.mark.slow  # four short GAN trainings with IS and FID (about a minute on the loaded 2-core VM)
def test_a_tiny_training_is_seeded_restarts_and_scores_is_and_fid(data_root, tmp_path):  # noqa: F811
    cfg = search_config(**{'estimator.real_data.data_root': str(data_root),
                           'estimator.reward.extractor.weights_path': f'{data_root}/toy_classifier.pth',
                           'estimator.reward.num_images': 100})
    standalone, space = recipe(cfg, keep_checkpoints=True, cfg_options=dict(
        train_cfg=dict(max_epochs=2), train_dataloader=dict(batch_size=16),
        model=dict(generator=dict(gf_dim=WIDTH), discriminator=dict(df_dim=WIDTH),
                   gen_batch_size=16)))
    arch, other = space.sample(random.Random(0)), space.sample(random.Random(1))
    first = standalone.train_and_score(arch, tmp_path / 'first')
    assert first.score == first.metrics['IS'] and first.score >= 1.0
    assert first.metrics['FID'] > 0 and 'train_loss' in first.metrics
    assert (tmp_path / 'first' / 'epoch_2.pth').is_file()
    # Another generator trains otherwise, so the equalities below can fail.
    assert standalone.train_and_score(other, tmp_path / 'other').metrics['train_loss'] \
        != first.metrics['train_loss']
    # The same generator in a fresh folder: the same training and scores.
    assert standalone.train_and_score(arch, tmp_path / 'again').metrics == first.metrics
    # Restarted in its folder, the finished training resumes from its last checkpoint
    # (nothing left to train: no loss logged) and scores the same.
    restarted = standalone.train_and_score(arch, tmp_path / 'first')
    assert 'train_loss' not in restarted.metrics
    assert (restarted.score, restarted.metrics['FID']) == (first.score, first.metrics['FID'])


def test_the_cifar10_search_configs_diagnose_section_builds():
    from nas_tasks.builder import load_config
    from nas_tasks.diagnostics.diagnosis import DiagnoseSettings
    cfg = load_config(str(REPO / 'configs/autogan/autogan_cifar10.py'))
    assert DiagnoseSettings.from_config(cfg).num_candidates == 8
    standalone, _ = recipe(cfg)
    train = standalone.train_cfg
    # The official final training (gf 256, 320 epochs), scored by the search's reward.
    assert (train.model.generator.gf_dim, train.train_cfg.max_epochs) == (256, 320)
    assert train.val_evaluator.extractor.type == 'InceptionV3Compat'
    assert train.val_dataloader.dataset.num_images == cfg.estimator.reward.num_images == 5000
