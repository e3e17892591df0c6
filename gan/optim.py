"""One optimiser per network of a GAN, as mmengine's ``OptimWrapperDict``.

mmengine builds a single ``OptimWrapper`` for the whole model unless a
constructor says otherwise; :class:`PerNetworkOptimWrapperConstructor` builds
one for each named submodule::

    optim_wrapper = dict(
        constructor='PerNetworkOptimWrapperConstructor',
        generator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=2e-4, betas=(0.0, 0.9))),
        discriminator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=2e-4, betas=(0.0, 0.9))))

Settings at the top level that are not a submodule's (``type``,
``loss_scale``, as ``tools/train.py --amp`` sets them) apply to every wrapper
that does not set them itself.
"""
from __future__ import annotations

from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

from nas_tasks.errors import NasError


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class PerNetworkOptimWrapperConstructor:
    """Builds ``OptimWrapperDict(name=wrapper of model.<name>)`` for each dict-valued key."""

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None):
        if paramwise_cfg is not None:
            raise NasError('optim_wrapper.paramwise_cfg applies to one network: give it inside '
                           'optim_wrapper.<network> instead')
        self.shared = {key: value for key, value in optim_wrapper_cfg.items()
                       if not isinstance(value, dict)}
        self.per_network = {key: value for key, value in optim_wrapper_cfg.items()
                            if isinstance(value, dict)}
        if not self.per_network:
            raise NasError('optim_wrapper names no network: give one optim wrapper config per '
                           'network, e.g. generator=dict(...), discriminator=dict(...)')

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        model = model.module if is_model_wrapper(model) else model
        wrappers = {}
        for name, cfg in self.per_network.items():
            network = getattr(model, name, None)
            if not isinstance(network, nn.Module):
                raise NasError(f'optim_wrapper.{name}: the model {type(model).__name__} has no '
                               f'network {name!r}')
            cfg = {**self.shared, **cfg}
            paramwise_cfg = cfg.pop('paramwise_cfg', None)
            wrappers[name] = DefaultOptimWrapperConstructor(cfg, paramwise_cfg)(network)
        return OptimWrapperDict(**wrappers)
