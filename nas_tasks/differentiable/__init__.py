"""Differentiable (DARTS-style) search: mixed ops, architecture parameters, bilevel trainer,
and the base of differentiable search tasks."""
from nas_tasks.differentiable.arch_params import ArchParameters
from nas_tasks.differentiable.mixed_op import MixedOp
from nas_tasks.differentiable.task import DifferentiableSearchTask
from nas_tasks.differentiable.trainer import DifferentiableTrainer
from nas_tasks.plots import plot_arch_weights

__all__ = ['ArchParameters', 'DifferentiableSearchTask', 'DifferentiableTrainer', 'MixedOp',
           'plot_arch_weights']
