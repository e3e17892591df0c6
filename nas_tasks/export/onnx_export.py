"""The ONNX file of a model's tensor forward, and onnxruntime's outputs for it.

Two of ``torch.onnx.export``'s exporters are offered: ``'dynamo'`` (torch's
default since 2.9: ``torch.export`` traces the model, onnxscript translates
the graph) and ``'torchscript'`` (the legacy tracer, deprecated by torch,
several times faster on these models). Either gives a graph with a fixed
input size and batch 1, weights inside the file.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

from nas_tasks.errors import NasError, first_line
from nas_tasks.export.parity import Outputs, flatten_outputs

EXPORTERS = ('dynamo', 'torchscript')

Forward = Callable[[nn.Module, torch.Tensor], Any]


class TensorForward(nn.Module):
    """``forward(model, inputs)`` with the outputs as one flat tuple (what ONNX holds)."""

    def __init__(self, model: nn.Module, forward: Forward):
        super().__init__()
        self.model = model
        self.tensor_forward = forward

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(tensor for _, tensor in flatten_outputs(self.tensor_forward(self.model, inputs)))


def export_onnx(model: nn.Module, forward: Forward, inputs: torch.Tensor, input_name: str,
                output_names: list[str], path: Path, exporter: str = 'dynamo') -> dict:
    """Write the ONNX graph of ``forward(model, inputs)`` at ``inputs``' shape to ``path``.

    Returns what the file is: exporter, opset, input and output names.
    """
    if exporter not in EXPORTERS:
        raise NasError(f"unknown exporter '{exporter}'; choose one of: {', '.join(EXPORTERS)}")
    wrapper = TensorForward(model, forward).eval()
    # Both exporters narrate; their warnings (e.g. the legacy exporter's
    # deprecation) are about torch, not about the model.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter('ignore')
        try:
            torch.onnx.export(wrapper, (inputs,), str(path), input_names=[input_name],
                              output_names=output_names, dynamo=exporter == 'dynamo',
                              **({'external_data': False} if exporter == 'dynamo' else {}))
        except Exception as error:  # noqa: BLE001  (the exporters raise many kinds)
            raise NasError(f'torch.onnx.export ({exporter}) failed: {first_line(error)}') from error
    graph = onnx.load(str(path), load_external_data=False)
    opset = next((entry.version for entry in graph.opset_import if entry.domain in ('', 'ai.onnx')),
                 None)
    return dict(exporter=exporter, opset=opset, input=input_name,
                outputs=[output.name for output in graph.graph.output])


def run_onnxruntime(path: Path, inputs: torch.Tensor) -> list[np.ndarray]:
    """onnxruntime's outputs for ``inputs`` on the CPU."""
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    return session.run(None, {name: inputs.numpy()})


def output_names(outputs: Outputs) -> list[str]:
    return [name for name, _ in outputs]
