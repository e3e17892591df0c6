"""The README's FNA quick start is a chain: each command reads what the one before wrote.

The commands are not run (they take minutes); they are parsed, and the paths
each one writes are compared with the paths the next one's config reads.
"""
import re
import shlex
from pathlib import Path, PurePosixPath

import pytest
from mmengine.config import Config

from conftest import REPO

FNA_HEADING = '## FNA: adapt a timm network to detection or segmentation'
WORK_DIRS = 'work_dirs'


def bash_block_after(heading: str) -> list[list[str]]:
    """The commands (argument lists, comments and line continuations dropped) of the
    first ```bash block after ``heading`` in the README."""
    text = (REPO / 'README.md').read_text(encoding='utf-8')
    assert heading in text, f'the README has no section {heading!r}'
    section = text[text.index(heading):]
    match = re.search(r'```bash\n(.*?)```', section, re.S)
    assert match, f'no ```bash block after {heading!r}'
    source = match.group(1).replace('\\\n', ' ')
    return [shlex.split(line, comments=True) for line in source.splitlines()
            if shlex.split(line, comments=True)]


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def config(path: str) -> Config:
    return Config.fromfile(str(REPO / path))


def tool_work_dir(args: list[str]) -> PurePosixPath:
    """Where tools/search.py and tools/train.py write: --work-dir, else the config's
    work_dir, else work_dirs/<config name> (nas_tasks/runner.py, nas_tasks/search.py)."""
    given = option(args, '--work-dir') or config(args[2]).get('work_dir')
    return PurePosixPath(given or f'{WORK_DIRS}/{PurePosixPath(args[2]).stem}')


def same_dir(a, b) -> bool:
    return PurePosixPath(str(a).rstrip('/')) == PurePosixPath(str(b).rstrip('/'))


def hook(cfg: Config, type_name: str) -> dict:
    hooks = [h for h in cfg.get('custom_hooks', []) if h.get('type') == type_name]
    assert len(hooks) == 1, f'{type_name} in custom_hooks: {hooks}'
    return hooks[0]


def last_checkpoint(cfg: Config) -> str:
    """The checkpoint an iteration-based training leaves last: iter_<max_iters>.pth."""
    max_iters = cfg.train_cfg['max_iters']
    checkpoint = cfg.default_hooks['checkpoint']
    assert checkpoint.get('by_epoch', True) is False, 'an iteration-based checkpoint hook'
    assert max_iters % checkpoint['interval'] == 0 or checkpoint.get('save_last', True), (
        'no checkpoint is written at the last iteration')
    return f'iter_{max_iters}.pth'


@pytest.fixture(scope='module')
def commands() -> dict[str, list[str]]:
    """The block's commands, named by their role, in the order they must run."""
    lines = bash_block_after(FNA_HEADING)
    tools = [(args[1], args) for args in lines if args[0] == 'python']
    assert len(tools) == len(lines), f'every command runs a tool: {lines}'
    roles = ['seed data', 'seed training', 'coco data', 'search', 'fine-tune', 'test']
    expected = ['tools/make_toy_data.py', 'tools/train.py', 'tools/make_toy_data.py',
                'tools/search.py', 'tools/train.py', 'tools/test.py']
    assert [tool for tool, _ in tools] == expected, [tool for tool, _ in tools]
    return dict(zip(roles, (args for _, args in tools)))


def test_the_seed_is_trained_on_the_data_the_first_command_writes(commands):
    make = commands['seed data']
    assert make[2] == 'imagenet'
    seed_cfg = config(commands['seed training'][2])
    for split in ('train', 'val'):
        assert same_dir(make[3], seed_cfg[f'{split}_dataloader'].dataset.data_root), (
            f'the seed config reads {seed_cfg[f"{split}_dataloader"].dataset.data_root}, '
            f'the README writes {make[3]}')
    # The seed config's header says how big the set must be; the README writes that size.
    header = (REPO / commands['seed training'][2]).read_text(encoding='utf-8')
    wanted = re.search(r'python tools/make_toy_data\.py (imagenet .*)', header).group(1).split()
    assert make[2:] == wanted, f'README: {make[2:]}, the seed config: {wanted}'


def test_the_search_reads_the_seed_weights_the_seed_training_exports(commands):
    seed_args = commands['seed training']
    exported = tool_work_dir(seed_args) / hook(config(seed_args[2]), 'ExportWeightsHook')['filename']
    search_cfg = config(commands['search'][2])
    assert search_cfg.model.backbone.seed.weights == str(exported)


def test_the_search_reads_the_coco_data_the_block_writes(commands):
    make = commands['coco data']
    assert make[2] == 'coco'
    search_cfg = config(commands['search'][2])
    for split in ('train', 'val'):
        assert same_dir(make[3], search_cfg[f'{split}_dataloader'].dataset.data_root)
    assert search_cfg.val_evaluator.ann_file.startswith(make[3].rstrip('/') + '/')


def test_the_fine_tuning_reads_what_the_search_writes(commands):
    search_dir = tool_work_dir(commands['search'])
    backbone = config(commands['fine-tune'][2]).model.backbone
    assert backbone.arch == str(search_dir / 'best_arch.json')
    assert backbone.weights == str(search_dir / 'adapted_weights.pth')
    # The search writes both files under these names.
    from backbones.fna.search_task import WEIGHTS_FILE
    from nas_tasks.workdir import BEST_ARCH_NAME
    assert (BEST_ARCH_NAME, WEIGHTS_FILE) == ('best_arch.json', 'adapted_weights.pth')


def test_the_test_command_reads_the_fine_tuning_checkpoint(commands):
    fine_tune, test = commands['fine-tune'], commands['test']
    assert test[2] == fine_tune[2], 'the test runs the fine-tuning config'
    written = tool_work_dir(fine_tune) / last_checkpoint(config(fine_tune[2]))
    assert test[3] == str(written)

