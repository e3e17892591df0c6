"""nas_tasks: the shared core of the suite (spaces, strategies, estimators, the search loop)."""
__version__ = '0.1.0'
