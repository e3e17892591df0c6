"""Search strategies; importing this package registers them in ``STRATEGIES``."""
from .aging_evolution import AgingEvolution
from .base import Strategy
from .evolution import Evolution
from .multi_level import MultiLevelSearch
from .random_search import RandomSearch
from .reinforce import ReinforceController

__all__ = ['Strategy', 'RandomSearch', 'Evolution', 'AgingEvolution', 'ReinforceController',
           'MultiLevelSearch']
