"""What an estimator returns for one candidate architecture."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from nas_tasks.errors import first_line


@dataclass
class Result:
    """The score of one candidate, higher is better, plus its costs.

    ``costs`` holds resources such as ``flops``, ``params`` and ``seconds``;
    ``metrics`` holds everything else worth logging. A failed evaluation is a
    result too: its score is NaN and ``error`` says what went wrong
    (``{'type': ..., 'message': ...}``). A non-finite score counts as a
    failure whether or not an error was recorded.
    """

    score: float
    costs: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    error: dict[str, str] | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None or not math.isfinite(self.score)

    @property
    def failure_reason(self) -> dict[str, str] | None:
        """What made this result a failure: the recorded error, or the non-finite score."""
        if not self.failed:
            return None
        return self.error or dict(type='NonFiniteScore', message=f'the score is {self.score}')

    @classmethod
    def failure(cls, error: BaseException | dict, costs: dict | None = None) -> 'Result':
        """The result of an evaluation that raised ``error`` (or an error record)."""
        if isinstance(error, BaseException):
            error = dict(type=type(error).__name__, message=first_line(error, limit=1000))
        return cls(score=math.nan, costs=dict(costs or {}), error=dict(error))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> 'Result':
        score = data.get('score')
        return cls(score=math.nan if score is None else float(score),
                   costs=dict(data.get('costs', {})), metrics=dict(data.get('metrics', {})),
                   error=data.get('error'))


def ranking_score(score: float | None) -> float:
    """The one policy for bad scores: a failed (None, NaN) or infinite score ranks below every finite one."""
    if score is None or not math.isfinite(score):
        return -math.inf
    return score
