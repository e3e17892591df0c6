"""Estimator diagnostics: does a search rank candidates as standalone training does?

``diagnosis.run_diagnosis`` (tools/diagnose.py) runs one; tasks register their
recipes in :data:`STANDALONE_RECIPES` and :data:`SEARCH_ABLATIONS`. Only the
registries are imported here, so a task registering a recipe loads no more.
"""
from nas_tasks.diagnostics.recipes import (RANDOM_ARCHITECTURES, SEARCH_ABLATIONS, STANDALONE_RECIPES,
                                           RandomArchitectures, SearchAblation, StandaloneRecipe)

__all__ = ['RANDOM_ARCHITECTURES', 'SEARCH_ABLATIONS', 'STANDALONE_RECIPES', 'RandomArchitectures',
           'SearchAblation', 'StandaloneRecipe']
