"""Measure the per-candidate cost table of an FNA search's super network on this machine.

python tools/fna_cost_table.py CONFIG --out TABLE.json [--metric latency|madds]
                               [--input-size H W] [--clock wall|thread]
                               [--cfg-options KEY=VALUE ...]

A latency table is only true for the device it was measured on: run this on
the device the adapted network will run on (CUDA when present, else the CPU,
with the thread count torch uses there), then search anywhere with
    --cfg-options differentiable_search.cost.metric=latency \\
        differentiable_search.cost.table=TABLE.json
The file records how it was measured (device, torch, threads, batch, input size,
clock), and how far its sums miss sampled whole adapted networks (estimate_error).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nas_tasks.cli import parse_cfg_options, run_cli  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='an FNA search config (configs/fna/fna_*.py)')
    parser.add_argument('--out', required=True, help='the table file to write (JSON)')
    parser.add_argument('--metric', choices=('latency', 'madds'), default='latency')
    parser.add_argument('--input-size', type=int, nargs=2, metavar=('H', 'W'),
                        help="default: the config's differentiable_search.cost.input_size")
    parser.add_argument('--clock', choices=('wall', 'thread'),
                        help="a latency table's clock (default: the config's cost.clock, else "
                             "'wall'); 'thread' is the CPU time of one torch thread "
                             '(OMP_NUM_THREADS=1), for cores other jobs share')
    parser.add_argument('--cfg-options', nargs='+', help='override config settings, key=value')
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    from backbones.fna.costs import cost_table, save_table
    from backbones.fna.search_task import DEFAULT_COST
    from backbones.fna.super_net import FNASuperNet
    from nas_tasks import dist
    from nas_tasks.builder import load_config
    from nas_tasks.errors import NasError
    from nas_tasks.latency import describe_estimate_error

    cfg = load_config(args.config, parse_cfg_options(args.cfg_options))
    backbone = dict(cfg.get('model', {}).get('backbone', {}))
    if backbone.pop('type', None) != 'FNASuperNet':
        raise NasError(f'{args.config} is not an FNA search config (its model.backbone is not '
                       'an FNASuperNet)')
    cost = {**DEFAULT_COST, **cfg.get('differentiable_search', {}).get('cost', {})}
    input_size = tuple(args.input_size or cost['input_size'])
    # The table does not depend on the weights: no seed file is read.
    supernet = FNASuperNet(**backbone).to(dist.device())
    timing = dict(clock=args.clock or cost['clock']) if args.metric == 'latency' else {}
    document = cost_table(supernet, input_size, args.metric, **timing)
    save_table(args.out, document)
    table, provenance = document['table'], document['provenance']
    cheapest = sum(min(row) for row in table)
    dearest = sum(max(row) for row in table)
    print(f'{args.out}: {len(table)} layers, {provenance["unit"]} per candidate on '
          f'{provenance["device"]} ({provenance["threads"]} threads, input {input_size}); '
          f'searchable layers cost {cheapest:.4g} to {dearest:.4g}')
    if 'estimate_error' in document:
        print(describe_estimate_error(document['estimate_error'], 'whole adapted networks'))
    return 0


if __name__ == '__main__':
    run_cli(main)
