from detection.detnas.space import DetNASSpace

__all__ = ['DetNASSpace']
