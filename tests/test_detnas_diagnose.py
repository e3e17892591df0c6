"""DetNAS's diagnosis recipe (detection/diagnose.py) as the toy config sets it up."""
import copy
import random

from nas_tasks.builder import build_component, load_config
from nas_tasks.diagnostics import STANDALONE_RECIPES
from nas_tasks.modules import register_all_modules
from nas_tasks.registry import SPACES

from conftest import REPO, TOY_CONFIG


def _recipe(cfg, space):
    return build_component(STANDALONE_RECIPES, cfg.diagnose.standalone, 'diagnose.standalone',
                           default_args=dict(config=cfg, space=space, seed=1))


def test_a_recipe_leaves_the_settings_it_was_built_from_as_they_were(tmp_path):
    """A ``_delete_`` in cfg_options (a from-scratch optimizer replacing the fine-tuning one) is
    consumed by the merge; building must not consume the config's own, or a second recipe
    (another rank, a rerun comparing its settings with the records') merges a different config."""
    register_all_modules()
    cfg = load_config(str(REPO / TOY_CONFIG))
    cfg.diagnose.standalone.cfg_options = dict(
        optim_wrapper=dict(optimizer=dict(_delete_=True, type='AdamW', lr=2e-3, weight_decay=0.05)))
    before = copy.deepcopy(cfg.diagnose.standalone.to_dict())
    space = build_component(SPACES, cfg.search_space, 'search_space')
    recipes = [_recipe(cfg, space), _recipe(cfg, space)]
    assert cfg.diagnose.standalone.to_dict() == before
    arch = space.sample(random.Random(0))
    for recipe in recipes:
        optimizer = recipe._runner_config(arch, 7, tmp_path).optim_wrapper.optimizer
        assert optimizer.to_dict() == dict(type='AdamW', lr=2e-3, weight_decay=0.05)  # no SGD momentum
