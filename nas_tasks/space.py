"""Search spaces: named categorical decisions and the architectures drawn from them.

An architecture (:data:`Arch`) is a plain JSON-able dict mapping each decision
name to one of its options, e.g. ``{'layer00': 'shuffle3x3', ...}``. It is
saved together with the name and version of its space so that a file made for
one space is never silently loaded into another.
"""
from __future__ import annotations

import json
import math
import os
import random
from typing import Any

from .errors import ArchError, NasError
from .io import atomic_write_json
from .registry import SPACES
from .validation import is_int

Arch = dict[str, Any]

_OPTION_TYPES = (str, int, float, bool, type(None))


def _same_option(a: Any, b: Any) -> bool:
    # Strict on type: 1, 1.0 and True are equal in Python but canonicalise to
    # different JSON, so accepting them would defeat de-duplication.
    return type(a) is type(b) and a == b


class ArchSpace:
    """What every space offers to arch documents and to the resolver
    (:func:`nas_tasks.architectures.resolve_arch`): a ``name`` and a
    ``version`` (written into every document, so that a file made for one space
    is never silently loaded into another) and :meth:`validate`. The document
    methods follow from these. A space whose archs are not flat decision
    dicts (Auto-DeepLab's cell, path and filter multiplier) subclasses it
    directly, as :class:`CategoricalSpace` does.
    """

    name: str
    version: int

    def validate(self, arch: Arch) -> None:
        """Raise :class:`ArchError`, naming the bad key or value, unless ``arch`` fits."""
        raise NotImplementedError

    def is_valid(self, arch: Arch) -> bool:
        """``validate`` as a yes/no answer, for samplers that redraw invalid architectures."""
        try:
            self.validate(arch)
        except ArchError:
            return False
        return True

    def to_document(self, arch: Arch, metrics: dict | None = None) -> dict:
        """The JSON document saved for ``arch``: space name, version, arch, metrics."""
        self.validate(arch)
        return {'space': self.name, 'version': self.version, 'arch': dict(arch),
                'metrics': dict(metrics or {})}

    def from_document(self, doc: dict) -> Arch:
        """The architecture in ``doc``, after checking it was made for this space."""
        if not isinstance(doc, dict) or not all(k in doc for k in ('space', 'version', 'arch')):
            raise ArchError("an architecture document needs the fields 'space', 'version' and 'arch'")
        if doc['space'] != self.name or doc['version'] != self.version:
            raise ArchError(f"architecture is for space '{doc['space']}' version {doc['version']}, "
                            f"but this search space is '{self.name}' version {self.version}")
        self.validate(doc['arch'])
        return dict(doc['arch'])

    def save_arch(self, path: str | os.PathLike, arch: Arch, metrics: dict | None = None) -> None:
        """Write the document of ``arch`` to ``path`` as pretty JSON, atomically."""
        atomic_write_json(path, self.to_document(arch, metrics))


@SPACES.register_module()
class CategoricalSpace(ArchSpace):
    """An ordered set of named decisions, each picking one option from a list.

    Args:
        choices: decision name -> list of JSON-able options (str, int, ...).
            The order of the names is the order used for sampling.
        name: identifies the space in saved architecture files.
        version: bump it whenever the choices change meaning.
    """

    def __init__(self, choices: dict[str, list], name: str, version: int = 1):
        if not isinstance(name, str) or not name:
            raise NasError(f'search space name must be a non-empty string, got {name!r}')
        if not is_int(version):
            raise NasError(f'search space version must be an int, got {version!r}')
        if not isinstance(choices, dict) or not choices:
            raise NasError(f"search space '{name}' needs a non-empty dict of choices")
        self._name = name
        self._version = version
        self._choices: dict[str, list] = {}
        for key, options in choices.items():
            if not isinstance(key, str):
                raise NasError(f"search space '{name}': decision names must be strings, got {key!r}")
            if not isinstance(options, (list, tuple)) or not options:
                raise NasError(f"search space '{name}': key '{key}' needs a non-empty list of options, "
                               f'got {options!r}')
            for i, option in enumerate(options):
                if not isinstance(option, _OPTION_TYPES):
                    raise NasError(f"search space '{name}': key '{key}' has option {option!r}, "
                                   'but options must be JSON scalars (str, int, float, bool, null)')
                if any(_same_option(option, other) for other in options[:i]):
                    raise NasError(f"search space '{name}': key '{key}' lists option {option!r} twice")
            self._choices[key] = list(options)

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> int:
        return self._version

    @property
    def keys(self) -> list[str]:
        return list(self._choices)

    def options(self, key: str) -> list:
        if key not in self._choices:
            raise ArchError(f"search space '{self._name}' has no key '{key}'; "
                            f"keys: {', '.join(self._choices)}")
        return list(self._choices[key])

    def size(self) -> int:
        """The number of distinct architectures (an exact, possibly huge int)."""
        return math.prod(len(options) for options in self._choices.values())

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(name={self._name!r}, version={self._version}, '
                f'keys={len(self._choices)}, size={self.size()})')

    # -- drawing architectures; all randomness comes from ``rng`` -------------

    def sample(self, rng: random.Random) -> Arch:
        """One architecture, each decision drawn uniformly."""
        return {key: rng.choice(options) for key, options in self._choices.items()}

    def mutate(self, arch: Arch, prob: float, rng: random.Random) -> Arch:
        """A copy of ``arch`` where each decision, with probability ``prob``, is
        redrawn uniformly from all its options (so it may keep its value)."""
        if not 0.0 <= prob <= 1.0:
            raise NasError(f'mutation probability must be in [0, 1], got {prob}')
        child = dict(arch)
        for key, options in self._choices.items():
            if rng.random() < prob:
                child[key] = rng.choice(options)
        return child

    def mutate_one(self, arch: Arch, rng: random.Random) -> Arch:
        """A copy of ``arch`` with exactly one decision changed to a different
        option (regularized evolution). Decisions with a single option are never
        picked; if no decision has two options the copy equals ``arch``."""
        child = dict(arch)
        mutable = [key for key, options in self._choices.items() if len(options) > 1]
        if mutable:
            key = rng.choice(mutable)
            others = [o for o in self._choices[key] if not _same_option(o, arch[key])]
            child[key] = rng.choice(others)
        return child

    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> Arch:
        """Each decision taken from ``a`` or ``b`` with probability 0.5."""
        return {key: a[key] if rng.random() < 0.5 else b[key] for key in self._choices}

    # -- checking and (de)serialising ----------------------------------------

    def validate(self, arch: Arch) -> None:
        """Raise :class:`ArchError` unless ``arch`` has exactly this space's keys,
        each set to one of its options."""
        if not isinstance(arch, dict):
            raise ArchError(f'an architecture must be a dict of decisions, got {type(arch).__name__}')
        missing = [key for key in self._choices if key not in arch]
        if missing:
            raise ArchError(f"architecture is missing key(s) {_quoted(missing)} of search space "
                            f"'{self._name}' v{self._version}")
        extra = [key for key in arch if key not in self._choices]
        if extra:
            raise ArchError(f"architecture has unknown key(s) {_quoted(extra)}; search space "
                            f"'{self._name}' v{self._version} has keys: {', '.join(self._choices)}")
        for key, options in self._choices.items():
            value = arch[key]
            if not any(_same_option(value, option) for option in options):
                raise ArchError(f"architecture key '{key}' has value {value!r}; allowed values: "
                                f"{', '.join(map(str, options))}")

    def canonical(self, arch: Arch) -> str:
        """A canonical JSON string of ``arch``: equal archs give equal strings."""
        return json.dumps(arch, sort_keys=True, separators=(',', ':'))


@SPACES.register_module()
class StagedSpace(CategoricalSpace):
    """A categorical space whose decisions come in consecutive stages, searched
    one stage at a time (AutoGAN's multi-level search: cell 1, then cell 2
    given the best cells 1, ...; see :class:`~nas_tasks.strategies.MultiLevelSearch`).

    A whole architecture decides every stage; a *prefix* decides the stages
    0..s exactly, and is what the earlier stages of a search propose and
    score. :meth:`validate`, :meth:`is_valid` and :meth:`canonical` accept
    both. Documents (:meth:`to_document`, :meth:`from_document`,
    :meth:`save_arch`) hold whole architectures only, so a found architecture
    is never a prefix. Everything else (``keys``, :meth:`size`, sampling,
    mutation) is the whole space's, as in :class:`CategoricalSpace`.

    Args:
        stages: one dict per stage, in order, of decision name -> options;
            a name belongs to one stage only.
        name, version: as for :class:`CategoricalSpace`.
    """

    def __init__(self, stages: list[dict[str, list]], name: str, version: int = 1):
        if not isinstance(stages, (list, tuple)) or not stages:
            raise NasError(f'staged search space {name!r} needs a non-empty list of stages '
                           '(dicts of decision name -> options)')
        for index, stage in enumerate(stages):
            if not isinstance(stage, dict) or not stage:
                raise NasError(f'staged search space {name!r}: stage {index} must be a non-empty '
                               f'dict of decision name -> options, got {stage!r}')
            repeated = [key for key in stage if any(key in earlier for earlier in stages[:index])]
            if repeated:
                raise NasError(f'staged search space {name!r}: key(s) {_quoted(repeated)} of stage '
                               f'{index} belong to an earlier stage too')
        super().__init__({key: options for stage in stages for key, options in stage.items()},
                         name, version)
        self._stage_keys = [list(stage) for stage in stages]
        # The space of the prefixes that end with stage s, which checks them.
        self._prefix_spaces = [CategoricalSpace(self._choices_up_to(s), name, version)
                               for s in range(len(stages))]

    @property
    def num_stages(self) -> int:
        return len(self._stage_keys)

    def keys_of_stage(self, stage: int) -> list[str]:
        """The decision names of ``stage`` (0-based), in order."""
        self._check_stage(stage)
        return list(self._stage_keys[stage])

    def stage_of(self, arch: Arch) -> int:
        """The last stage that ``arch`` (a prefix or a whole architecture) decides;
        :class:`ArchError` unless it decides stages 0..s exactly, with valid options."""
        self.validate(arch)
        return self._last_stage_named(arch)

    def is_complete(self, arch: Arch) -> bool:
        """Whether ``arch`` decides every stage (not a prefix); it must be valid."""
        return self.stage_of(arch) == self.num_stages - 1

    def prefix(self, arch: Arch, stage: int) -> Arch:
        """The decisions of stages 0..``stage`` of ``arch``, which decides at least those."""
        self._check_stage(stage)
        decided = self.stage_of(arch)
        if decided < stage:
            raise ArchError(f"architecture decides the stages up to {decided} only, "
                            f"so it has no prefix up to stage {stage}")
        return {key: arch[key] for key in self._choices_up_to(stage)}

    def conditioned(self, stage: int, prefixes: list[Arch]) -> PrefixedSpace:
        """The space that stage ``stage`` of a multi-level search draws from: its
        decisions after one of ``prefixes`` (prefixes up to stage ``stage - 1``;
        ``[{}]`` for stage 0)."""
        self._check_stage(stage)
        for prefix in prefixes:
            if stage == 0 and prefix:
                raise NasError(f'stage 0 of a staged space has no earlier stages, got prefix {prefix!r}')
            if stage > 0 and self.stage_of(prefix) != stage - 1:
                raise NasError(f'a prefix of stage {stage} must decide the stages up to {stage - 1}, '
                               f'got {self.canonical(prefix)}')
        return PrefixedSpace(self._choices_up_to(stage), prefixes, self.name, self.version)

    def validate(self, arch: Arch) -> None:
        """Raise :class:`ArchError` unless ``arch`` decides the stages 0..s exactly,
        for some s, each decision set to one of its options."""
        if not isinstance(arch, dict):
            super().validate(arch)  # the message for a non-dict
        unknown = [key for key in arch if key not in self._choices]
        if unknown:
            raise ArchError(f"architecture has unknown key(s) {_quoted(unknown)}; search space "
                            f"'{self.name}' v{self.version} has keys: {', '.join(self._choices)}")
        self._prefix_spaces[self._last_stage_named(arch)].validate(arch)

    def to_document(self, arch: Arch, metrics: dict | None = None) -> dict:
        self._check_complete(arch)
        return super().to_document(arch, metrics)

    def from_document(self, doc: dict) -> Arch:
        arch = super().from_document(doc)
        self._check_complete(arch)
        return arch

    def _check_complete(self, arch: Arch) -> None:
        if not self.is_complete(arch):
            raise ArchError(f"architecture decides the stages up to {self.stage_of(arch)} of the "
                            f"{self.num_stages} of search space '{self.name}', but an architecture "
                            'document holds a whole architecture, never a prefix')

    def _last_stage_named(self, arch: Arch) -> int:
        # A prefix names keys of stages 0..s; the last stage named decides which
        # keys are missing. An arch naming none is checked as a whole one.
        named = [s for s, keys in enumerate(self._stage_keys) if any(key in arch for key in keys)]
        return max(named, default=self.num_stages - 1)

    def _choices_up_to(self, stage: int) -> dict[str, list]:
        return {key: self._choices[key] for keys in self._stage_keys[:stage + 1] for key in keys}

    def _check_stage(self, stage: int) -> None:
        if not is_int(stage) or not 0 <= stage < self.num_stages:
            raise NasError(f"search space '{self.name}' has stages 0..{self.num_stages - 1}, "
                           f'got stage {stage!r}')


class PrefixedSpace(CategoricalSpace):
    """The decisions of stages 0..s of a :class:`StagedSpace`, with those of the
    earlier stages fixed to one of ``prefixes``: what stage s of a multi-level
    search draws from (made by :meth:`StagedSpace.conditioned`).

    :meth:`sample` picks a prefix uniformly and draws the rest uniformly;
    :meth:`size` counts the reachable architectures; :meth:`validate` refuses
    another prefix. A controller sees ``prefixes`` and teacher-forces them
    (see :class:`~nas_tasks.strategies.ReinforceController`). Mutation and
    crossover are :class:`CategoricalSpace`'s and may leave the prefixes,
    which ``validate`` then refuses.
    """

    def __init__(self, choices: dict[str, list], prefixes: list[Arch], name: str, version: int = 1):
        super().__init__(choices, name, version)
        if not prefixes or any(list(prefix) != self.keys[:len(prefixes[0])] for prefix in prefixes):
            raise NasError(f"search space '{name}': prefixes must all decide the same first keys "
                           f'of {self.keys}, got {prefixes!r}')
        self.prefixes = [dict(prefix) for prefix in prefixes]
        self._prefix_keys = {self.canonical(prefix) for prefix in self.prefixes}
        if len(self._prefix_keys) < len(self.prefixes):
            raise NasError(f"search space '{name}': a prefix is given twice in {prefixes!r}")
        self._free_keys = self.keys[len(self.prefixes[0]):]

    def size(self) -> int:
        return len(self.prefixes) * math.prod(len(self.options(key)) for key in self._free_keys)

    def sample(self, rng: random.Random) -> Arch:
        """A prefix drawn uniformly, then each later decision drawn uniformly."""
        return {**rng.choice(self.prefixes), **{key: rng.choice(self.options(key)) for key in self._free_keys}}

    def validate(self, arch: Arch) -> None:
        super().validate(arch)
        fixed = {key: arch[key] for key in self.keys if key not in self._free_keys}
        if self.canonical(fixed) not in self._prefix_keys:
            raise ArchError(f'architecture starts with {self.canonical(fixed)}, which is not one of '
                            f'the {len(self.prefixes)} prefixes this stage grows from')


def load_arch(path: str | os.PathLike) -> dict:
    """Read an architecture document (see :meth:`CategoricalSpace.to_document`).

    Pass the result to :meth:`CategoricalSpace.from_document` to check it
    against a space and get the architecture.
    """
    try:
        with open(path, encoding='utf-8') as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise NasError(f'architecture file not found: {path}') from None
    except json.JSONDecodeError as e:
        raise NasError(f'architecture file {path} is not valid JSON: {e.msg} '
                       f'(line {e.lineno}, column {e.colno})') from None
    except (OSError, UnicodeDecodeError) as e:
        raise NasError(f'cannot read architecture file {path}: {e}') from None
    if not isinstance(doc, dict):
        raise NasError(f'architecture file {path} must hold a JSON object, got {type(doc).__name__}')
    return doc


def _quoted(keys: list[str]) -> str:
    return ', '.join(f"'{key}'" for key in keys)
