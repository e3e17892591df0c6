"""Check the suite's CUDA paths on this machine's GPU(s), in at most about 8 minutes.

python tools/gpu_check.py [--out work_dirs/gpu_check/gpu_check.json] [--keep DIR]

No GPU ran this code while it was written: the CUDA-only paths (nccl, SyncBN,
float16 loss scaling, CUDA timing) were stood in for on the CPU. This runs
each of them once, on toy data it writes into a temporary folder:

* one round of each sample-based toy search on CUDA: DetNAS (under a one-rank
  nccl group, its supernet with SyncBN, so BN recalibration runs inside a
  process group) and NAS-FPN;
* one short epoch of each differentiable toy search (Auto-DeepLab, FNA for
  detection and for segmentation) with AMP (float16 with the grad scaler) and
  sync_bn=True, under a one-rank nccl group;
* an AutoGAN toy search iteration (after training the toy IS classifier);
* a CUDA latency table (DetNAS's per-choice table, timed with CUDA
  synchronisation);
* with two GPUs or more, the DetNAS round again under torchrun on two ranks
  (nccl; SyncBN then all-reduces for real).

Every check runs as its own process (``tools/*.py``, or ``torchrun`` for the
nccl ones) with a time limit, so that a crash or a hang is that check's
failure. It prints one line per check (name, ok or FAILED, seconds, the error
line), then a summary, and writes them as JSON (``--out``). It exits with 1
when a check failed. Without CUDA it stops at once with one line.
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nas_tasks.cli import run_cli  # noqa: E402
from nas_tasks.errors import NasError  # noqa: E402

TOTAL_SECONDS = 8 * 60  # the whole check's budget on one GPU
CHECK_TIMEOUT = 240  # seconds one check may take at most
DEFAULT_OUT = 'work_dirs/gpu_check/gpu_check.json'
DIFFERENTIABLE = 'differentiable_search'


@dataclass
class Check:
    """One check: commands run one after the other from the repository root."""
    name: str
    commands: list[list[str]]
    what: str
    timeout: int = CHECK_TIMEOUT


@dataclass
class Outcome:
    name: str
    what: str
    ok: bool
    seconds: float
    error: str = ''
    commands: list[list[str]] = field(default_factory=list)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=DEFAULT_OUT, help=f'the JSON results (default {DEFAULT_OUT})')
    parser.add_argument('--keep', metavar='DIR',
                        help='write the toy data and work directories here and keep them '
                             '(default: a temporary folder, removed at the end)')
    parser.add_argument('--only', nargs='+', metavar='NAME', help='run only these checks')
    return parser.parse_args(argv)


def require_cuda() -> str:
    """The GPU's name; without CUDA, one line (before anything heavy is imported)."""
    import torch
    if not torch.cuda.is_available():
        built = f'built with CUDA {torch.version.cuda}' if torch.version.cuda else 'a CPU-only build'
        raise NasError(f'tools/gpu_check.py checks the CUDA paths and this machine has no usable '
                       f'CUDA GPU (torch {torch.__version__}, {built}); run it on a GPU machine')
    return torch.cuda.get_device_name(0)


# -- the checks ------------------------------------------------------------------------------------

def tool(script: str, *args: str) -> list[str]:
    return [sys.executable, f'tools/{script}', *args]


def torchrun(ranks: int, script: str, *args: str) -> list[str]:
    return [sys.executable, '-m', 'torch.distributed.run', '--nproc-per-node', str(ranks),
            '--master-port', free_port(), f'tools/{script}', *args, '--launcher', 'pytorch']


def free_port() -> str:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return str(probe.getsockname()[1])


def detnas_options(coco: Path) -> list[str]:
    """One round of 2 candidates after 20 supernet iterations, its supernet with SyncBN."""
    return [f'data_root={coco}/', 'train_cfg.max_iters=20', 'default_hooks.checkpoint.interval=20',
            'strategy.population_size=2', 'strategy.max_generations=1', 'strategy.top_k=1',
            'strategy.num_mutation=1', 'strategy.num_crossover=0',
            'estimator.bn_recalibration_batches=2', 'model.test_cfg.score_thr=0.0',
            'model.backbone.norm_cfg.type=SyncBN']


def differentiable_options(data_root: Path) -> list[str]:
    """One epoch of 2 iterations with architecture steps, float16 AMP and SyncBN."""
    return [f'data_root={data_root}/', f'{DIFFERENTIABLE}.trainer.epochs=1',
            f'{DIFFERENTIABLE}.trainer.arch_start_epoch=0',
            f'{DIFFERENTIABLE}.trainer.max_iters_per_epoch=2',
            f'{DIFFERENTIABLE}.trainer.amp=True', f'{DIFFERENTIABLE}.trainer.sync_bn=True',
            f'{DIFFERENTIABLE}.eval_interval=0']


def fna_options(config: str, data_root: Path, seed_weights: Path) -> list[str]:
    depths = '[2,2,1,1,1,1]' if 'retinanet' in config else '[2,2,2,1,1,1]'
    options = [*differentiable_options(data_root), f'model.backbone.seed.weights={seed_weights}',
               f'model.backbone.depths={depths}', 'model.backbone.kernel_sizes=[3]',
               f'{DIFFERENTIABLE}.trainer.dataloader.batch_size=2']
    if 'retinanet' in config:
        options += [f'{split}_dataloader.dataset.data_root={data_root}/'
                    for split in ('train', 'val', 'test')]
        options += [f'val_evaluator.ann_file={data_root}/annotations/instances_heldout.json']
    return options


def autogan_options(cifar: Path) -> list[str]:
    """One search iteration of 2 controller steps per stage, a 100-image reward."""
    return [f'estimator.real_data.data_root={cifar}',
            f'estimator.reward.extractor.weights_path={cifar}/toy_classifier.pth',
            'strategy.stage_steps=[2,2,2]', 'strategy.num_candidates=2', 'strategy.top_k=1',
            'strategy.controller.baseline_reset_steps=2', 'estimator.rounds_per_iteration=2',
            'estimator.shared_d_steps=4', 'estimator.reward.num_images=100',
            'estimator.reward.batch_size=50']


LATENCY_SNIPPET = '''
import json, random, sys
sys.path.insert(0, '.')
import backbones, detection  # registers the DetNAS space and latency table
from detection.detnas.latency import DetNASLatencyTable
from nas_tasks.registry import SPACES
space = SPACES.build(dict(type='DetNASSpace', variant='small'))
table = DetNASLatencyTable(space, input_size=(320, 320), table=sys.argv[1], repeats=5,
                           check_networks=2, device='cuda')
latency = table.costs(space.sample(random.Random(0)))['latency']
assert latency > 0, latency
print(json.dumps(dict(latency_ms=latency)))
'''


def checks(root: Path, gpus: int) -> list[Check]:
    """Every check, in order; the first ones write the toy data the others read."""
    coco, cityscapes, cifar = root / 'toy_coco', root / 'toy_cityscapes', root / 'toy_cifar10'
    seed_weights = root / 'fna_seed.pth'
    work = root / 'work_dirs'
    fna_det, fna_seg = 'configs/fna/fna_retinanet_toy.py', 'configs/fna/fna_deeplabv3_toy.py'
    seed_snippet = ('import sys, timm, torch; torch.save(timm.create_model("mobilenetv2_100", '
                    'pretrained=False, num_classes=4).state_dict(), sys.argv[1])')
    result = [
        Check('toy data', [
            *(tool('make_toy_data.py', layout, str(path))
              for layout, path in (('coco', coco), ('cityscapes', cityscapes), ('cifar10', cifar))),
            [sys.executable, '-c', seed_snippet, str(seed_weights)]],
              'toy COCO, Cityscapes and CIFAR-10, and an FNA seed (MobileNetV2, random weights)'),
        Check('detnas round (nccl, SyncBN)',
              [torchrun(1, 'search.py', 'configs/detnas/detnas_retinanet_toy.py',
                        '--work-dir', str(work / 'detnas'), '--cfg-options', *detnas_options(coco))],
              'one round of the DetNAS toy search on CUDA: supernet with SyncBN under a one-rank '
              'nccl group, BN recalibration and COCO mAP of 2 candidates'),
        Check('nas-fpn round',
              [tool('search.py', 'configs/nas_fpn/nas_fpn_retinanet_toy.py',
                    '--work-dir', str(work / 'nas_fpn'), '--cfg-options', f'data_root={coco}/',
                    'train_cfg.max_iters=20', 'model.test_cfg.score_thr=0.0',
                    'strategy.num_steps=1', 'strategy.batch_size=2')],
              'one controller step of the NAS-FPN toy search: 2 proxy trainings on CUDA'),
        Check('auto-deeplab epoch (amp fp16, SyncBN, nccl)',
              [torchrun(1, 'search.py', 'configs/auto_deeplab/auto_deeplab_toy.py',
                        '--work-dir', str(work / 'auto_deeplab'), '--cfg-options',
                        *differentiable_options(cityscapes),
                        f'{DIFFERENTIABLE}.network.num_layers=3',
                        f'{DIFFERENTIABLE}.network.filter_multiplier=2')],
              'one epoch of the Auto-DeepLab toy search, float16 with the grad scaler'),
        Check('fna detection epoch (amp fp16, SyncBN, nccl)',
              [torchrun(1, 'search.py', fna_det, '--work-dir', str(work / 'fna_det'),
                        '--cfg-options', *fna_options(fna_det, coco, seed_weights))],
              'one epoch of the FNA RetinaNet toy search, float16 with the grad scaler'),
        Check('fna segmentation epoch (amp fp16, SyncBN, nccl)',
              [torchrun(1, 'search.py', fna_seg, '--work-dir', str(work / 'fna_seg'),
                        '--cfg-options', *fna_options(fna_seg, cityscapes, seed_weights))],
              'one epoch of the FNA DeepLabV3 toy search, float16 with the grad scaler'),
        Check('autogan iteration',
              [tool('train_toy_classifier.py', str(cifar)),
               tool('search.py', 'configs/autogan/autogan_cifar10_toy.py',
                    '--work-dir', str(work / 'autogan'), '--cfg-options', *autogan_options(cifar))],
              'the toy IS classifier, then one AutoGAN toy search iteration on CUDA'),
        Check('latency table (cuda)',
              [[sys.executable, '-c', LATENCY_SNIPPET, str(root / 'detnas_latency.json')]],
              "DetNAS's per-choice latency table timed on the GPU, checked against 2 whole networks"),
    ]
    if gpus >= 2:
        result.append(Check(
            'detnas round on 2 ranks (nccl, SyncBN)',
            [torchrun(2, 'search.py', 'configs/detnas/detnas_retinanet_toy.py',
                      '--work-dir', str(work / 'detnas_2_ranks'), '--cfg-options', *detnas_options(coco))],
            'the DetNAS round under torchrun on 2 GPUs: DDP supernet with synchronised BN, '
            'candidates split over the ranks'))
    return result


# -- running them ----------------------------------------------------------------------------------

# The last line of a Python traceback: ``SomeError: ...`` or ``module.SomeError: ...``.
EXCEPTION_LINE = re.compile(r'^([A-Za-z_][\w.]*\.)?[A-Z]\w*(Error|Exception|Exit|Interrupt|Expired)\b')


def error_line(output: str) -> str:
    """The one line that says what went wrong: a tool's ``error:`` line, else the
    exception of the last traceback, else the last line printed."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    tool_errors = [line[len('error: '):] for line in lines if line.startswith('error: ')]
    exceptions = [line for line in lines if EXCEPTION_LINE.match(line)]
    return (tool_errors or exceptions or lines or ['no output'])[-1]


def run_check(check: Check, seconds_left: float) -> Outcome:
    """Run the check's commands in turn, within its time limit and what is left of the budget."""
    deadline = time.perf_counter() + min(check.timeout, seconds_left)
    start = time.perf_counter()
    env = dict(os.environ, PYTHONUNBUFFERED='1')

    def failed(error: str) -> Outcome:
        return Outcome(check.name, check.what, False, time.perf_counter() - start, error,
                       check.commands)

    if seconds_left <= 0:
        return failed(f'not run: the {TOTAL_SECONDS} s budget was spent')
    for command in check.commands:
        try:
            result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                                    timeout=max(deadline - time.perf_counter(), 1))
        except subprocess.TimeoutExpired:
            return failed(f'stopped at the time limit ({min(check.timeout, seconds_left):.0f} s): '
                          f'{" ".join(command[:4])} ...')
        if result.returncode != 0:
            return failed(f'exit status {result.returncode}: '
                          f'{error_line(result.stdout + chr(10) + result.stderr)}')
    return Outcome(check.name, check.what, True, time.perf_counter() - start, '', check.commands)


def report_line(outcome: Outcome) -> str:
    status = 'ok' if outcome.ok else 'FAILED'
    line = f'{outcome.name:<48} {status:<6} {outcome.seconds:6.1f} s'
    return f'{line}  {outcome.error}' if outcome.error else line


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    gpu = require_cuda()
    import torch
    gpus = torch.cuda.device_count()
    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix='gpu_check_') as scratch:
        root = Path(args.keep) if args.keep else Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        todo = checks(root.resolve(), gpus)
        if args.only:
            unknown = sorted(set(args.only) - {check.name for check in todo})
            if unknown:
                raise NasError(f'--only names no check {unknown}; the checks: '
                               + ', '.join(repr(check.name) for check in todo))
            todo = [check for check in todo if check.name in args.only or check.name == 'toy data']
        print(f'gpu_check: {len(todo)} checks on {gpus} x {gpu} (torch {torch.__version__}, '
              f'CUDA {torch.version.cuda})', flush=True)
        start = time.perf_counter()
        outcomes = []
        for check in todo:
            if outcomes and not outcomes[0].ok:  # every other check reads the toy data
                outcome = Outcome(check.name, check.what, False, 0.0,
                                  'not run: the toy data could not be written', check.commands)
            else:
                outcome = run_check(check, TOTAL_SECONDS - (time.perf_counter() - start))
            outcomes.append(outcome)
            print(report_line(outcome), flush=True)
    total = time.perf_counter() - start
    passed = sum(outcome.ok for outcome in outcomes)
    summary = f'gpu_check: {passed} of {len(outcomes)} checks ok on {gpu} in {total:.0f} s'
    print(summary)
    from nas_tasks.io import atomic_write_json
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, dict(
        gpu=gpu, gpus=gpus, torch=torch.__version__, cuda=torch.version.cuda,
        seconds=round(total, 1), passed=passed, failed=len(outcomes) - passed, summary=summary,
        checks=[asdict(outcome) for outcome in outcomes]))
    print(f'results: {out}')
    return 0 if passed == len(outcomes) else 1


if __name__ == '__main__':
    run_cli(main)
