"""Deploy-clean export of found models: plain config, weights and ONNX, with parity checks.

The core knows no task: each task registers an :class:`ExportAdapter` for the
spaces of the arch documents it writes (see :mod:`nas_tasks.export.adapter`).
"""
from nas_tasks.export.adapter import EXPORT_ADAPTERS, ExportAdapter, Reference
from nas_tasks.export.found import FoundModel, read_found_model
from nas_tasks.export.run import export_found_model

__all__ = ['EXPORT_ADAPTERS', 'ExportAdapter', 'Reference', 'FoundModel', 'read_found_model',
           'export_found_model']
