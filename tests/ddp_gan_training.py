"""Run under torchrun by test_autogan_final_training: trains a GAN config with build_runner
(as tools/train.py does) and prints, per rank, one line ``DDP {json}`` with the wrappers and
the sums of the generator's, the discriminator's and the EMA's weights.

python -m torch.distributed.run --nproc_per_node 2 tests/ddp_gan_training.py CONFIG WORK_DIR KEY=VALUE...
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from nas_tasks import dist  # noqa: E402
from nas_tasks.cli import parse_cfg_options  # noqa: E402
from nas_tasks.runner import build_runner  # noqa: E402


def main() -> None:
    config, work_dir, *pairs = sys.argv[1:]
    runner = build_runner(config, work_dir, 'pytorch', parse_cfg_options(pairs))
    runner.train()
    model = runner.model.module
    with torch.no_grad():
        sums = [float(sum(p.double().sum() for p in network.parameters()))
                for network in (model.generator, model.discriminator, model.generator_ema)]
    print('DDP ' + json.dumps({'rank': dist.get_rank(), 'wrapper': type(runner.model).__name__,
                               'generator': type(model.generator).__name__, 'sums': sums,
                               'd_steps': int(model.num_d_steps)}), flush=True)


if __name__ == '__main__':
    main()
