"""Latency measured on the current device, kept in lookup tables a later search reuses.

Two kinds of latency cost model build on this module; a task subclasses one
and registers it in ``COST_MODELS``. Both give ``{'latency': milliseconds}``.

* :class:`PerChoiceLatencyTable`, for spaces whose choices are independent
  per layer (DetNAS): every part of the network (a fixed stem, each choice of
  each layer) is timed in place, i.e. on the input it gets at that layer, in
  passes over all parts (see :func:`measure_latencies_ms`), and an
  architecture's latency is the sum of its parts' entries. The
  sums are checked against end-to-end timings of a few sampled whole
  networks, and the error (mean and worst, in percent) is logged and saved
  with the table.
* :class:`WholeNetworkLatency`, for spaces whose choices are not independent
  (NAS-FPN's cells, AutoGAN's skips): each candidate's whole network is timed
  once and kept under its canonical architecture.

A table is a JSON file written atomically, with ``setup``: what was timed and
how (the network, the device, the torch version, the number of threads, the
batch, the input size, the repeats). A model reuses a table whose setup is
its own; a table measured on another setup is measured again, with one log
line saying what differs, and replaced. Without a ``table`` path, tables live
in ``~/.cache/nas_tasks/latency/``, so every search on this machine shares them.

Timings are the median of ``repeats`` forward passes after ``warmup``
untimed ones, without gradients, synchronising the GPU around each on CUDA.
The clock is the wall clock; on a CPU whose cores other processes share, a
model can time with ``clock='thread'`` instead, the CPU time of the timing
thread (with one torch thread, the latency the network would have on cores
of its own: the time other processes hold the core does not count).
"""
from __future__ import annotations

import json
import platform
import random
import re
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from mmengine.logging import MMLogger

from nas_tasks import dist
from nas_tasks.errors import NasError
from nas_tasks.io import atomic_write_json
from nas_tasks.space import Arch, CategoricalSpace
from nas_tasks.validation import check_int, is_int

LATENCY = 'latency'  # the cost name every latency model gives, in milliseconds
UNIT = 'ms'
DEFAULT_TABLE_DIR = Path('~/.cache/nas_tasks/latency')
CLOCKS = {'wall': time.perf_counter, 'thread': time.thread_time}
# A forward to time: a module, or any callable of the input (a detector's tensor mode).
Forward = Callable[[torch.Tensor], Any]


def device_name(device: torch.device | str) -> str:
    """``'cuda: <GPU name>'`` or ``'cpu: <CPU model>'``: what a latency was measured on."""
    device = torch.device(device)
    if device.type == 'cuda':
        return f'cuda: {torch.cuda.get_device_name(device)}'
    return f'{device.type}: {_cpu_model()}'


def _cpu_model() -> str:
    # platform.processor() is only the architecture on Linux ('x86_64'); two
    # machines of different speeds must not look alike.
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure_latency_ms(forward: Forward, x: torch.Tensor, repeats: int = 10, warmup: int = 2,
                       clock: str = 'wall') -> float:
    """The median time of ``repeats`` calls ``forward(x)`` after ``warmup`` untimed ones, in
    ms, by the wall clock or the CPU time of this thread (``clock='thread'``)."""
    return measure_latencies_ms([('', forward, x)], repeats, warmup, clock)['']


def measure_latencies_ms(parts: list[tuple[str, Forward, torch.Tensor]], repeats: int = 10,
                         warmup: int = 2, clock: str = 'wall') -> dict[str, float]:
    """``{name: median ms}`` of each ``(name, forward, x)`` of ``parts``, timed interleaved:
    each of ``warmup + repeats`` passes calls every part once, in order.

    Timed in a pass over the whole network rather than many times in a row, a
    part finds the caches as it would in the network (the other parts' weights
    and activations went through them in between); a part repeated on its own
    keeps its weights cached and times faster than it runs in the network
    (measured: a DetNAS table's sums 14-28% under whole backbones, 1-8% interleaved).
    """
    synchronize = torch.cuda.synchronize if any(x.is_cuda for _, _, x in parts) else (lambda: None)
    now = CLOCKS[clock]
    times: dict[str, list[float]] = {name: [] for name, _, _ in parts}
    with torch.no_grad():
        for attempt in range(warmup + repeats):
            for name, forward, x in parts:
                synchronize()
                start = now()
                forward(x)
                synchronize()
                if attempt >= warmup:
                    times[name].append((now() - start) * 1000)
    return {name: float(statistics.median(values)) for name, values in times.items()}


def measurement_setup(device: torch.device | str, batch: int, input_size, **how) -> dict:
    """How a latency is measured here (``how``: e.g. repeats, clock): a table
    measured otherwise does not hold here."""
    return dict(device=device_name(device), torch=torch.__version__,
                threads=torch.get_num_threads(), batch=batch, input_size=list(input_size), **how)


def setup_differences(theirs: dict, mine: dict) -> list[str]:
    """``['threads 4 there, 1 here', ...]`` for every field of ``mine`` that ``theirs`` differs in."""
    return [f'{key} {theirs.get(key)!r} there, {value!r} here'
            for key, value in mine.items() if theirs.get(key) != value]


def estimate_error(checks: list[dict]) -> dict:
    """Mean and worst absolute error, in percent, of ``checks`` (each with
    ``estimated_ms`` and ``measured_ms``), with the checks themselves."""
    errors = [abs(check['error_pct']) for check in checks]
    return dict(mean_pct=statistics.fmean(errors), worst_pct=max(errors), networks=checks)


def error_check(arch: Arch, estimated: float, measured: float) -> dict:
    return dict(arch=arch, estimated_ms=estimated, measured_ms=measured,
                error_pct=100.0 * (estimated - measured) / measured)


def _log(message: str) -> None:
    if dist.is_main_process():
        MMLogger.get_current_instance().info(message)


def describe_estimate_error(error: dict, networks: str = 'whole networks') -> str:
    """``error`` (of :func:`estimate_error`) in words, for a log line."""
    return (f'sums of entries against {len(error["networks"])} {networks} timed end to end: '
            f'mean error {error["mean_pct"]:.1f}%, worst {error["worst_pct"]:.1f}%')


def check_clock(clock: str, device: torch.device) -> None:
    if clock not in CLOCKS:
        raise NasError(f"latency model setting clock must be one of {', '.join(CLOCKS)}, got {clock!r}")
    # A thread's CPU time misses the other threads' work and the GPU's.
    if clock == 'thread' and (device.type != 'cpu' or torch.get_num_threads() != 1):
        raise NasError(f"clock='thread' times one CPU thread, but this runs on {device.type} with "
                       f'{torch.get_num_threads()} torch threads; use it on the CPU with '
                       "OMP_NUM_THREADS=1, or clock='wall'")


class LatencyTableFile:
    """A latency table on disk: ``{"unit", "setup", "entries", ...}`` as JSON."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()

    def load(self, setup: dict) -> dict | None:
        """The table if it was measured on ``setup``; None when there is none, or
        (with one log line naming the differences) when it was measured otherwise."""
        if not self.path.is_file():
            return None
        try:
            document = json.loads(self.path.read_text())
            theirs, entries = document['setup'], document['entries']
            if not isinstance(theirs, dict) or not isinstance(entries, dict):
                raise TypeError('setup and entries must be objects')
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise NasError(f'cannot read latency table {self.path}: {error}; delete it to measure '
                           'it again') from error
        differences = setup_differences(theirs, setup)
        if differences:
            _log(f'latency table {self.path} was measured on another setup '
                 f'({"; ".join(differences)}): measuring it again')
            return None
        return document

    def save(self, document: dict) -> None:
        """Write ``document`` atomically; only the main process writes."""
        if dist.is_main_process():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, document)


class LatencyModel:
    """What both kinds of latency model share: the setup, the device and the table file.

    Subclasses set :attr:`network`, a short name of what is timed (it is part
    of the setup and of the default file name), before calling this ``__init__``.

    Args:
        space: the searched space; archs are canonicalised (and sampled) by it.
        input_size: the input the network is timed at, e.g. ``(800, 1333)``
            for an image, ``(128,)`` for a latent vector.
        table: the table's JSON path; by default
            ``~/.cache/nas_tasks/latency/<network>_<input size>_b<batch>.json``.
        batch: the batch size timed.
        repeats, warmup: timed and untimed forward passes per measurement.
        clock: ``'wall'``, or ``'thread'`` (CPU time; on the CPU with one
            torch thread only), see the module docstring.
        device: where to time; by default this process's device (its GPU
            when there is one, else the CPU).
    """

    network: str

    def __init__(self, space: CategoricalSpace, input_size, table: str | Path | None = None,
                 batch: int = 1, repeats: int = 10, warmup: int = 2, clock: str = 'wall',
                 device: str | None = None):
        if not isinstance(input_size, (list, tuple)) or not input_size or not all(
                is_int(side) and side > 0 for side in input_size):
            raise NasError(f'latency model setting input_size must be a list of positive ints, '
                           f'e.g. (800, 1333), got {input_size!r}')
        for name, value, minimum in (('batch', batch, 1), ('repeats', repeats, 1), ('warmup', warmup, 0)):
            check_int(f'latency model setting {name}', value, minimum)
        self.space = space
        self.input_size = tuple(input_size)
        self.batch = batch
        self.repeats = repeats
        self.warmup = warmup
        self.device = torch.device(device) if device is not None else dist.device()
        check_clock(clock, self.device)
        self.clock = clock
        self.setup = dict(network=self.network, **measurement_setup(
            self.device, batch, self.input_size, repeats=repeats, warmup=warmup, clock=clock))
        self.file = LatencyTableFile(table if table is not None else self.default_table_path())

    def default_table_path(self) -> Path:
        size = 'x'.join(map(str, self.input_size))
        name = re.sub(r'[^A-Za-z0-9.]+', '-', self.network).strip('-')
        return DEFAULT_TABLE_DIR.expanduser() / f'{name}_{size}_b{self.batch}.json'

    def time(self, forward: Forward, x: torch.Tensor) -> float:
        """The latency of ``forward(x)`` in ms, by this model's setup."""
        return measure_latency_ms(forward, x, self.repeats, self.warmup, self.clock)

    def place(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` on the device, in eval mode (BN on running statistics), as deployed."""
        return module.to(self.device).eval()

    def zeros(self) -> torch.Tensor:
        """A zero input of the batch and input size timed, on the device."""
        return torch.zeros(self.batch, *self.input_shape(), device=self.device)

    def input_shape(self) -> tuple[int, ...]:
        """The input's shape without the batch; an image of ``input_size`` by default."""
        return (3, *self.input_size)

    def costs(self, arch: Arch) -> dict[str, float]:
        raise NotImplementedError


class PerChoiceLatencyTable(LatencyModel):
    """An architecture's latency as the sum of the table entries of its parts.

    A subclass says what the parts are:

    * :meth:`parts` yields ``(entry name, forward, input)`` for every part,
      on the device, each with the input it gets in the network (all of them
      are kept while they are timed together);
    * :meth:`entry_names` lists the entries an architecture is made of;
    * :meth:`whole_network` gives ``(forward, input)`` of an architecture's
      whole network, to check the sums against.

    Args (besides :class:`LatencyModel`'s):
        check_networks: sampled architectures whose whole networks are timed
            to check the sums (the estimate error).
        seed: seeds their sampling.
    """

    def __init__(self, space: CategoricalSpace, input_size, table: str | Path | None = None,
                 batch: int = 1, repeats: int = 10, warmup: int = 2, check_networks: int = 5,
                 seed: int = 0, clock: str = 'wall', device: str | None = None):
        super().__init__(space, input_size, table, batch, repeats, warmup, clock, device)
        check_int('latency model setting check_networks', check_networks)
        self.check_networks = check_networks
        self.seed = seed
        # The main process loads or measures; every rank prices with its table
        # (latencies measured by each rank would differ, and so would its decisions).
        document = dist.broadcast_object(self._load_or_measure() if dist.is_main_process() else None)
        self.reused = document.pop('reused')
        self.entries: dict[str, float] = document['entries']
        self.estimate_error: dict = document['estimate_error']
        _log(f'latency table {self.file.path} ({"reused" if self.reused else "measured"}; '
             f'{len(self.entries)} entries in {UNIT}): {describe_estimate_error(self.estimate_error)}')

    def parts(self) -> Iterator[tuple[str, Forward, torch.Tensor]]:
        raise NotImplementedError

    def entry_names(self, arch: Arch) -> list[str]:
        raise NotImplementedError

    def whole_network(self, arch: Arch) -> tuple[Forward, torch.Tensor]:
        raise NotImplementedError

    def costs(self, arch: Arch) -> dict[str, float]:
        return {LATENCY: self.estimate(arch)}

    def estimate(self, arch: Arch) -> float:
        return sum(self.entries[name] for name in self.entry_names(arch))

    def _load_or_measure(self) -> dict:
        document = self.file.load(self.setup)
        if document is not None:
            return dict(document, reused=True)
        entries = measure_latencies_ms(list(self.parts()), self.repeats, self.warmup, self.clock)
        document = dict(unit=UNIT, setup=self.setup, entries=entries)
        self.entries = entries
        rng = random.Random(self.seed)
        checks = [error_check(arch, self.estimate(arch), self.time(*self.whole_network(arch)))
                  for arch in (self._sample(rng) for _ in range(self.check_networks))]
        document['estimate_error'] = estimate_error(checks)
        self.file.save(document)
        return dict(document, reused=False)

    def _sample(self, rng: random.Random) -> Arch:
        while True:
            arch = self.space.sample(rng)
            if self.space.is_valid(arch):
                return arch


class WholeNetworkLatency(LatencyModel):
    """Each architecture's whole network timed once, kept under its canonical form.

    A subclass implements :meth:`whole_network`. Every process measures what it
    is asked for itself; only the main process writes the table, after each
    new measurement.
    """

    def __init__(self, space: CategoricalSpace, input_size, table: str | Path | None = None,
                 batch: int = 1, repeats: int = 10, warmup: int = 2, clock: str = 'wall',
                 device: str | None = None):
        super().__init__(space, input_size, table, batch, repeats, warmup, clock, device)
        document = self.file.load(self.setup)
        self.reused = document is not None
        self.latencies: dict[str, float] = dict(document['entries']) if document else {}

    def whole_network(self, arch: Arch) -> tuple[Forward, torch.Tensor]:
        raise NotImplementedError

    def costs(self, arch: Arch) -> dict[str, float]:
        key = self.space.canonical(arch)
        if key not in self.latencies:
            self.latencies[key] = self.time(*self.whole_network(arch))
            self.file.save(dict(unit=UNIT, setup=self.setup, entries=self.latencies))
        return {LATENCY: self.latencies[key]}
