"""What is imported, and when: tools answer --help without the heavy stack, and
importing a task package imports no ONNX and no torch-fidelity (those load when
an export or an IS/FID network needs them)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import fresh_python_json

REPO = Path(__file__).resolve().parents[1]
# Not imported by a tool's --help.
HEAVY = ('torch', 'mmdet', 'mmseg', 'timm', 'onnx', 'onnxruntime', 'torch_fidelity')
# Not imported by importing a task package.
EXPORT_AND_METRICS = ('onnx', 'onnxruntime', 'onnxscript', 'torch_fidelity')

# Runs a tool as its own __main__ and prints the top-level modules it loaded (last line, stderr).
RUN_TOOL = '''
import json, runpy, sys
tool = sys.argv[1]
sys.argv = sys.argv[1:]
try:
    runpy.run_path(tool, run_name='__main__')
except SystemExit as exit:
    code = exit.code
else:
    code = 0
print(json.dumps(dict(code=code, modules=sorted({name.split('.')[0] for name in sys.modules}))),
      file=sys.stderr)
'''


def loaded_modules(*args: str) -> tuple[str, dict]:
    """stdout and ``{code, modules}`` of ``python -c RUN_TOOL args``, in a fresh interpreter."""
    result = subprocess.run([sys.executable, '-c', RUN_TOOL, *args], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, json.loads(result.stderr.strip().splitlines()[-1])


def test_the_probe_sees_a_heavy_import(tmp_path):
    # The check can fail: a tool that imports torch is seen doing it.
    tool = tmp_path / 'heavy_tool.py'
    tool.write_text('import sys\nimport torch\nsys.exit(3)\n')
    _, found = loaded_modules(str(tool))
    assert found['code'] == 3 and 'torch' in found['modules']


@pytest.mark.parametrize('tool, expected', [
    ('tools/split_coco.py', '--held-out'),
    ('tools/make_toy_data.py', '{cifar10,cityscapes,coco,imagenet}'),
])
def test_tool_help_imports_nothing_heavy(tool, expected):
    stdout, found = loaded_modules(tool, '--help')
    assert found['code'] == 0 and expected in stdout
    heavy = sorted(set(HEAVY) & set(found['modules']))
    assert not heavy, f'{tool} --help imports {heavy}'


def test_task_packages_import_no_export_or_metric_backends():
    code = ('import json, sys\n'
            'import backbones, detection, gan, segmentation\n'
            'print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))\n')
    loaded = set(fresh_python_json(code))
    assert 'torch' in loaded  # the packages did import
    assert not set(EXPORT_AND_METRICS) & loaded, sorted(set(EXPORT_AND_METRICS) & loaded)


def test_export_adapters_and_extractors_are_found_when_needed():
    """The registries import the adapters' and the extractors' modules on first use."""
    code = ('import json, sys\n'
            'from nas_tasks.modules import register_all_modules\n'
            'register_all_modules()\n'
            'from nas_tasks.export.adapter import registered_adapters\n'
            'from gan.metrics import GAN_FEATURE_EXTRACTORS\n'
            'adapters = sorted(adapter.__name__ for adapter in registered_adapters())\n'
            "extractor = GAN_FEATURE_EXTRACTORS.get('ToyClassifier').__module__\n"
            "print(json.dumps(dict(adapters=adapters, extractor=extractor,\n"
            "                      fidelity='torch_fidelity' in sys.modules)))\n")
    found = fresh_python_json(code)
    assert found == dict(adapters=['AutoDeepLabExport', 'AutoGANExport', 'DetNASExport',
                                   'FNAExport', 'NASFPNExport'],
                         extractor='gan.feature_extractors', fidelity=True)
