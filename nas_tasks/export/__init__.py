"""Deploy-clean export of found models: plain config, weights and ONNX, with parity checks.

The core knows no task: each task registers an :class:`ExportAdapter` for the
spaces of the arch documents it writes (see :mod:`nas_tasks.export.adapter`).

Importing the package (as a task's adapter does) imports no ONNX:
``export_found_model`` and what it runs (onnx, onnxruntime) load on first use.
"""
from nas_tasks.export.adapter import EXPORT_ADAPTERS, ExportAdapter, Reference, task_export_adapters
from nas_tasks.export.found import FoundModel, read_found_model

__all__ = ['EXPORT_ADAPTERS', 'ExportAdapter', 'Reference', 'FoundModel', 'read_found_model',
           'export_found_model', 'task_export_adapters']


def __getattr__(name: str):
    if name == 'export_found_model':
        from nas_tasks.export.run import export_found_model
        return export_found_model
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
