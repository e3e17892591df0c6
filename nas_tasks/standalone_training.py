"""One architecture trained on its own by an mmengine Runner, in its own folder.

What the diagnosis's standalone recipes of every task share (detection's,
FNA's, AutoGAN's): a task config turned into the config of one candidate's
single-process Runner, that Runner built with its named mmengine instances
released afterwards, its training with a diverged loss reported in one line,
and its checkpoints deleted once the candidate is scored.

The Runner's work dir is the candidate's folder and it resumes from the
``last_checkpoint`` it finds there, so a training killed in the middle
continues from its last checkpoint (mmengine's resume: augmentations then
differ from an uninterrupted run).
"""
from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Iterator

from mmengine.config import Config
from mmengine.runner import Runner

from nas_tasks.mmengine_instances import released_mmengine_instances
from nas_tasks.runner import TrainingDiverged, make_runner
from nas_tasks.seeding import seed_everything

# Runner parts a recipe that scores the candidate itself (on the search's held-out split) leaves out.
EVALUATION_KEYS = ('val_dataloader', 'val_cfg', 'val_evaluator',
                   'test_dataloader', 'test_cfg', 'test_evaluator')


def standalone_runner_config(cfg: Config, run_dir: Path, seed: int, log_level: str,
                             left_out: tuple[str, ...] = ()) -> Config:
    """A copy of ``cfg`` for one candidate's Runner: in ``run_dir``, one process,
    seeded by ``seed``, resuming from ``run_dir``'s last checkpoint if it has one,
    without the top-level keys ``left_out``."""
    cfg = copy.deepcopy(cfg)
    run_dir = Path(run_dir)
    cfg.update(work_dir=str(run_dir), experiment_name=run_dir.name, launcher='none',
               model_wrapper_cfg=None, randomness=dict(seed=seed), load_from=None,
               resume=(run_dir / 'last_checkpoint').is_file(), log_level=log_level)
    cfg.update({key: None for key in left_out})
    if isinstance(cfg.get('visualizer'), dict):
        cfg.visualizer.pop('name', None)  # one visualizer instance per training
    return cfg


@contextlib.contextmanager
def standalone_runner(cfg: Config, seed: int) -> Iterator[Runner]:
    """The Runner of ``cfg`` built after the global generators are seeded with
    ``seed``; the instances it registers with mmengine are released after the block."""
    seed_everything(seed)
    with released_mmengine_instances():
        yield make_runner(cfg)


def train(runner: Runner) -> float | None:
    """``runner.train()``; the last training loss logged, None when a resumed run
    found its training already finished. A non-finite loss stops it with a
    FloatingPointError naming the iteration and the log's folder."""
    try:
        runner.train()
    except TrainingDiverged as error:
        raise FloatingPointError(f'standalone training diverged at iteration {error.iteration}: '
                                 f'loss is {error.loss} (log in {runner.work_dir})') from None
    hub = runner.message_hub
    return float(hub.get_scalar('train/loss').current()) if 'train/loss' in hub.log_scalars else None


def delete_checkpoints(run_dir: Path) -> None:
    """The checkpoints mmengine's CheckpointHook wrote in ``run_dir`` (and its pointer to the last)."""
    run_dir = Path(run_dir)
    for path in [*run_dir.glob('*.pth'), run_dir / 'last_checkpoint']:
        path.unlink(missing_ok=True)
