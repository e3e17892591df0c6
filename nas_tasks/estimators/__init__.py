from nas_tasks.estimators.base import Estimator
from nas_tasks.estimators.bn_recalibration import recalibrate_batch_norm

__all__ = ['Estimator', 'recalibrate_batch_norm']
