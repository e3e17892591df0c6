"""Export a found model: plain config, weights, ONNX, each after its parity check.

Everything is written to a staging folder first and checked there: the plain
config is read back with mmengine and built from the registry, the weights
are loaded into it strictly with mmengine's checkpoint loader, its outputs
are compared with the reference's (bit-exact), and onnxruntime's outputs on
the ONNX file with its own (within a tolerance). Only when every check
passes are the files copied into the output folder, each atomically, the
manifest ``export.json`` last; a failed check writes nothing.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import onnx
import onnxruntime
import torch
from mmengine.config import Config
from mmengine.runner.checkpoint import load_checkpoint
from torch import nn

from nas_tasks.builder import load_config
from nas_tasks.errors import NasError, first_line
from nas_tasks.export.adapter import adapter_for, build_model
from nas_tasks.export.found import read_found_model
from nas_tasks.export.onnx_export import export_onnx, output_names, run_onnxruntime
from nas_tasks.export.parity import ATOL, RTOL, check_close, check_exact, tensor_outputs
from nas_tasks.export.plain_config import check_no_search_code, plain_config
from nas_tasks.io import atomic_write_bytes, atomic_write_json, atomic_write_text

CONFIG_FILE = 'config.py'
WEIGHTS_FILE = 'weights.pth'
ONNX_FILE = 'model.onnx'
MANIFEST_FILE = 'export.json'


def export_found_model(source: str | Path, task_config: str | Path, out: str | Path,
                       cfg_options: dict | None = None, checkpoint: str | None = None,
                       input_size: Sequence[int] | None = None, exporter: str = 'dynamo',
                       seed: int = 0, log: Callable[[str], None] = print) -> dict:
    """Export the model found in ``source`` (a work dir or an arch JSON file) as the
    task config builds it; returns the manifest written to ``out/export.json``."""
    found = read_found_model(source)
    task_cfg = load_config(str(task_config), cfg_options)
    adapter = adapter_for(found)(found, task_cfg, checkpoint=checkpoint, seed=seed)
    plain = plain_config(task_cfg, adapter)
    text = plain.pretty_text
    check_no_search_code(plain, text, adapter, found)
    inputs = adapter.example_inputs(input_size)
    reference = adapter.reference()
    log(f'weights: {reference.weights}')
    meta = dict(arch=found.inline_document(), source=str(found.arch_path), weights=reference.weights)

    with tempfile.TemporaryDirectory(prefix='nas_export_') as staging_name:
        staging = Path(staging_name)
        (staging / CONFIG_FILE).write_text(text, encoding='utf-8')
        torch.save(dict(state_dict=reference.state_dict, meta=meta), staging / WEIGHTS_FILE)
        model = build_written(staging / CONFIG_FILE, staging / WEIGHTS_FILE, adapter.search_types)

        expected = tensor_outputs(adapter.tensor_forward, reference.model, inputs)
        outputs = tensor_outputs(adapter.tensor_forward, model, inputs)
        torch_parity = check_exact(expected, outputs, f'the exported model against {reference.description}')
        log(f'parity (PyTorch): the exported model computes {reference.description} exactly: '
            f'{torch_parity.outputs} outputs, {torch_parity.elements} values, torch.equal on '
            f'every one (max |diff| {torch_parity.max_abs_diff:g})')

        graph = export_onnx(model, adapter.tensor_forward, inputs, adapter.input_name,
                            output_names(outputs), staging / ONNX_FILE, exporter)
        ort_parity = check_close(outputs, run_onnxruntime(staging / ONNX_FILE, inputs),
                                 'onnxruntime against the exported PyTorch model')
        log(f'parity (onnxruntime): {ort_parity.outputs} outputs within {ATOL:g} + {RTOL:g} * '
            f'max|output| of PyTorch\'s ({graph["exporter"]} exporter): max |diff| '
            f'{ort_parity.max_abs_diff:.3g}, values up to {ort_parity.max_abs_value:.3g}')

        manifest = dict(
            source=str(found.arch_path), space=found.space_name, task_config=str(task_config),
            scope=adapter.scope, weights=reference.weights, reference=reference.description,
            files=dict(config=CONFIG_FILE, weights=WEIGHTS_FILE, onnx=ONNX_FILE),
            input=dict(name=graph['input'], shape=list(inputs.shape), seed=seed,
                       preprocessing=_preprocessing(plain)),
            outputs={name: list(tensor.shape) for name, tensor in outputs},
            onnx=dict(graph, onnx=onnx.__version__, onnxruntime=onnxruntime.__version__,
                      torch=torch.__version__),
            parity=dict(pytorch=dict(torch_parity.to_json(), check='torch.equal'),
                        onnxruntime=dict(ort_parity.to_json(), rtol=RTOL, atol=ATOL)))
        out = Path(out)
        atomic_write_text(out / CONFIG_FILE, text)
        atomic_write_bytes(out / WEIGHTS_FILE, (staging / WEIGHTS_FILE).read_bytes())
        atomic_write_bytes(out / ONNX_FILE, (staging / ONNX_FILE).read_bytes())
        atomic_write_json(out / MANIFEST_FILE, manifest)
    log(f'wrote {out / CONFIG_FILE}, {out / WEIGHTS_FILE}, {out / ONNX_FILE} and {out / MANIFEST_FILE}')
    return manifest


def build_written(config_path: Path, weights_path: Path, search_types: Sequence[str]) -> nn.Module:
    """The model of the written config, from the registry, with the written weights
    loaded by mmengine's loader (what mmdet's and mmseg's tools use), every key matching."""
    try:
        cfg = Config.fromfile(str(config_path))
    except Exception as error:  # noqa: BLE001
        raise NasError(f'the exported config does not load: {first_line(error)}') from error
    model = build_model(cfg.model, cfg.default_scope, seed=0)
    named = sorted({type(module).__name__ for module in model.modules()} & set(search_types))
    if named:
        raise NasError(f'the exported model contains the search module {named[0]}')
    try:
        load_checkpoint(model, str(weights_path), map_location='cpu', strict=True,
                        logger='silent')
    except RuntimeError as error:
        raise NasError(f'the exported weights do not fit the exported model: '
                       f'{first_line(error)}') from error
    return model.eval()


def _preprocessing(cfg: Config) -> dict:
    """What the data preprocessor does before the graph's input (mean, std, channel order)."""
    preprocessor = dict(cfg.model.get('data_preprocessor') or {})
    return {key: preprocessor[key] for key in ('mean', 'std', 'bgr_to_rgb', 'rgb_to_bgr',
                                               'pad_size_divisor', 'pad_value', 'pad_val')
            if key in preprocessor}


def read_manifest(out: str | Path) -> dict:
    return json.loads((Path(out) / MANIFEST_FILE).read_text())
