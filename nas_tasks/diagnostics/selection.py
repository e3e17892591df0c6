"""Which of a search's candidates a diagnosis trains: K spread over the score range."""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from nas_tasks.errors import NasError
from nas_tasks.space import CategoricalSpace
from nas_tasks.workdir import CANDIDATES_NAME


@dataclass(frozen=True)
class Candidate:
    """One evaluated architecture of a search and the score the search gave it."""

    key: str            # the space's canonical form of the arch
    arch: dict
    search_score: float | None  # None: an arch the search never scored (a random one)

    @property
    def id(self) -> str:
        """A short, stable file name for the candidate: the same arch, the same id."""
        return 'arch_' + hashlib.sha1(self.key.encode()).hexdigest()[:12]


def read_search_candidates(work_dir: Path, space: CategoricalSpace) -> list[Candidate]:
    """The successful whole candidates of a finished or running search, from
    ``candidates.jsonl``, in the order the search first evaluated them.

    Failed candidates are left out, and so are prefixes of a staged search
    (which are not whole architectures). An arch evaluated more than once (a
    search whose shared weights keep training) keeps its latest score. A line
    being written by a running search (the last one, cut off) is skipped.
    """
    path = Path(work_dir) / CANDIDATES_NAME
    if not path.is_file():
        raise NasError(f'{path} not found: diagnose a search that has evaluated candidates '
                       '(python tools/search.py CONFIG --work-dir WORK_DIR)')
    is_complete = getattr(space, 'is_complete', lambda arch: True)
    latest: dict[str, Candidate] = {}
    foreign = 0  # successful records that are no architecture of this space
    lines = path.read_text(encoding='utf-8').splitlines()
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                continue
            raise NasError(f'{path}:{number} is not a JSON line; is it a search\'s candidates file?')
        score = record.get('score')
        if record.get('status', 'ok') != 'ok' or score is None or not math.isfinite(score):
            continue
        arch = record['arch']
        if not space.is_valid(arch):
            foreign += 1
            continue
        if not is_complete(arch):
            continue
        key = space.canonical(arch)
        latest.pop(key, None)  # re-inserted last: ordered by the latest evaluation
        latest[key] = Candidate(key, arch, float(score))
    if foreign and not latest:
        raise NasError(f"{path} holds no architecture of the config's search space "
                       f"'{space.name}'; give the config the search in {work_dir} ran")
    return list(latest.values())


def select_spread(candidates: list[Candidate], count: int) -> list[Candidate]:
    """``count`` candidates whose search scores spread evenly over the score range.

    The targets are ``count`` evenly spaced scores from the lowest to the
    highest; each takes the nearest candidate not yet taken (the earlier one
    on equal distance), so the best and the worst are always in. With no more
    than ``count`` candidates, all are taken. Returned best first.
    """
    if len(candidates) <= count:
        chosen = list(candidates)
    else:
        scores = [c.search_score for c in candidates]
        low, high = min(scores), max(scores)
        taken: set[int] = set()
        for step in range(count):
            target = low + (high - low) * step / (count - 1)
            nearest = min((i for i in range(len(candidates)) if i not in taken),
                          key=lambda i: (abs(scores[i] - target), i))
            taken.add(nearest)
        chosen = [candidates[i] for i in sorted(taken)]
    return sorted(chosen, key=lambda c: -c.search_score)
