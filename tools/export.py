"""Export a found model as a plain mmdet/mmseg config, its weights and an ONNX file.

python tools/export.py WORK_DIR|ARCH_JSON --task CONFIG --out DIR
    [--checkpoint CKPT] [--input-size H W] [--exporter dynamo|torchscript] [--seed N]
    [--cfg-options k=v ...]

Before anything is written, the exported PyTorch model is checked to compute
exactly what the search path computes, and onnxruntime to compute what the
exported model computes (within a stated tolerance); a failed check writes
nothing and exits 2. See docs/export.md.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nas_tasks.cli import parse_cfg_options, run_cli  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export a found model: plain config, weights, ONNX')
    parser.add_argument('source', help="a search's work dir (its best_arch.json and weights) "
                                       'or an arch JSON file')
    parser.add_argument('--task', required=True, metavar='CONFIG',
                        help='the config whose model holds the searchable module: the search '
                             'config of a DetNAS or AutoGAN search, or a fine-tuning config')
    parser.add_argument('--out', required=True, metavar='DIR', help='where the files go')
    parser.add_argument('--checkpoint', help="weights of the task config's whole model (e.g. a "
                                             "fine-tuned checkpoint) instead of the search's")
    parser.add_argument('--input-size', nargs=2, type=int, metavar=('H', 'W'),
                        help="the ONNX graph's input size (default: the test pipeline's)")
    parser.add_argument('--exporter', choices=['dynamo', 'torchscript'], default='dynamo',
                        help="torch.onnx.export's exporter (default: dynamo, torch's default)")
    parser.add_argument('--seed', type=int, default=0,
                        help='seeds the example input and any initialised weights')
    parser.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE',
                        help='override task config values (e.g. data_root=...)')
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    from nas_tasks.export import export_found_model
    from nas_tasks.modules import register_all_modules

    register_all_modules()
    export_found_model(args.source, args.task, args.out, parse_cfg_options(args.cfg_options),
                       checkpoint=args.checkpoint, input_size=args.input_size,
                       exporter=args.exporter, seed=args.seed)
    return 0


if __name__ == '__main__':
    run_cli(main)
