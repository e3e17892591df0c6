"""How well latency tables estimate whole networks, measured on this machine.

For each input size and thread count: a DetNAS-small latency table (the stem
and every (layer, choice) block timed in place) measured afresh into a
temporary folder, and its estimate error against sampled whole backbones timed
end to end (what nas_tasks.latency saves with every table), with the seconds
the table took. Then the NAS-FPN toy detector, timed whole for a few sampled
pyramids (what NASFPNLatency keeps per candidate), each twice, to show how
much one whole-network timing moves between two measurements.

By the wall clock, on cores that other processes share (the load average is
printed), a whole network's timing catches more of their interruptions than a
short block's, and the table underestimates; by the timing thread's CPU time
(clock='thread', one thread only), their time does not count.

    python bench/latency.py [--sizes 128x128 320x320] [--threads 1 2] [--clocks wall thread]
                            [--networks 5] [--pyramids 3]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'bench'))

from machine import describe_machine  # noqa: E402


def size(text: str) -> tuple[int, int]:
    height, width = text.split('x')
    return int(height), int(width)


def detnas_tables(sizes, threads_list, clocks, networks: int, folder: Path) -> None:
    import torch
    from backbones.detnas_presets import DetNASSpace
    from detection.detnas.latency import DetNASLatencyTable

    print('DetNAS-small backbone, batch 1: table estimate against whole networks')
    print(f'{"input":>10} {"threads":>7} {"clock":>6} {"table s":>8} {"whole ms":>8} '
          f'{"mean err %":>10} {"worst err %":>11} {"bias %":>7} {"load":>5}')
    for threads in threads_list:
        torch.set_num_threads(threads)
        for clock in clocks:
            if clock == 'thread' and threads > 1:
                continue  # one thread's CPU time is no latency of several
            for input_size in sizes:
                start = time.perf_counter()
                table = DetNASLatencyTable(
                    DetNASSpace('small'), input_size, check_networks=networks, clock=clock,
                    table=folder / f'detnas_{threads}_{clock}_{input_size[0]}.json')
                seconds = time.perf_counter() - start
                checks = table.estimate_error['networks']
                whole = statistics.fmean(c['measured_ms'] for c in checks)
                bias = statistics.fmean(c['error_pct'] for c in checks)
                print(f'{"x".join(map(str, input_size)):>10} {threads:>7} {clock:>6} {seconds:>8.1f} '
                      f'{whole:>8.1f} {table.estimate_error["mean_pct"]:>10.1f} '
                      f'{table.estimate_error["worst_pct"]:>11.1f} {bias:>+7.1f} {os.getloadavg()[0]:>5.1f}')


def nas_fpn_whole_networks(count: int, folder: Path) -> None:
    import torch
    from detection.nas_fpn.latency import NASFPNLatency
    from detection.nas_fpn.space import NASFPNSpace
    from nas_tasks.builder import load_config

    torch.set_num_threads(1)
    cfg = load_config(str(REPO / 'configs/nas_fpn/nas_fpn_retinanet_toy.py'))
    space = NASFPNSpace()
    rng = random.Random(0)
    print('\nNAS-FPN toy detector (whole, 128x128, 1 thread), each pyramid timed twice:')
    for index in range(count):
        arch = next(a for a in iter(lambda: space.sample(rng), None) if space.is_valid(a))
        first = NASFPNLatency(space, cfg, (128, 128), table=folder / f'fpn_a{index}.json')
        second = NASFPNLatency(space, cfg, (128, 128), table=folder / f'fpn_b{index}.json')
        a, b = first.costs(arch)['latency'], second.costs(arch)['latency']
        print(f'  pyramid {index}: {a:.1f} ms, then {b:.1f} ms ({100 * (b - a) / a:+.1f}%)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', nargs='+', type=size, default=[(128, 128), (320, 320)])
    parser.add_argument('--threads', nargs='+', type=int, default=[1, 2])
    parser.add_argument('--clocks', nargs='+', choices=['wall', 'thread'], default=['wall', 'thread'])
    parser.add_argument('--networks', type=int, default=5)
    parser.add_argument('--pyramids', type=int, default=3)
    args = parser.parse_args()

    from nas_tasks.latency import device_name
    from nas_tasks.modules import register_all_modules
    register_all_modules()
    print(describe_machine(), '|', device_name('cpu'))
    with tempfile.TemporaryDirectory() as folder:
        detnas_tables(args.sizes, args.threads, args.clocks, args.networks, Path(folder))
        nas_fpn_whole_networks(args.pyramids, Path(folder))


if __name__ == '__main__':
    main()
