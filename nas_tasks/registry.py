"""mmengine registries for the search components.

A config names a component by ``type=``; users add their own by registering a
class here, never by editing the search loop.
"""
from mmengine.registry import Registry

SPACES = Registry('search space', scope='nas_tasks')
STRATEGIES = Registry('search strategy', scope='nas_tasks')
ESTIMATORS = Registry('estimator', scope='nas_tasks')
# Cheap resource models (FLOPs, params of an arch without building it).
COST_MODELS = Registry('cost model', scope='nas_tasks')
# Gradient-based searches (a trainer over architecture parameters, not ask/tell).
DIFFERENTIABLE_SEARCHES = Registry('differentiable search', scope='nas_tasks')
