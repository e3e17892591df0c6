from detection.detnas.space import DetNASSpace
from detection.detnas import latency  # noqa: F401  (registers DetNASLatencyTable)

__all__ = ['DetNASSpace']
