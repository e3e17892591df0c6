"""What an estimator returns for one candidate architecture, and what ``flops`` counts."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from nas_tasks.errors import first_line

# ``costs['flops']`` is a task's FLOP count, and every record that holds it (a line
# of candidates.jsonl, a differentiable search's result, best_arch.json's metrics)
# says what was counted in ``flops_convention``, one of:
MACS_CONV_MATMUL = 'macs_conv_matmul'
FLOPS_MMENGINE = 'flops_mmengine'
FLOPS_CONVENTIONS = {
    MACS_CONV_MATMUL: ('multiply-adds of the convolutions and matrix products only, one per '
                       "multiply-add, by torch's FlopCounterMode (DetNAS's and FNA's official "
                       'convention)'),
    FLOPS_MMENGINE: ("mmengine's FlopAnalyzer total: one per multiply-add, normalisation, "
                     'upsampling and element-wise ops counted too'),
}


def flops_convention_entry(costs: dict, convention: str | None) -> dict:
    """``{'flops_convention': convention}`` for a record whose ``costs`` hold ``flops``, else
    ``{}``: the entry every such record carries (None: its estimator does not say)."""
    return {'flops_convention': convention} if 'flops' in costs else {}


def arch_metrics(record: dict, score_name: str) -> dict:
    """The metrics best_arch.json keeps of a search record: its metrics, its costs (and
    their ``flops_convention``), then the score under ``score_name``, last so that a
    metric of that name (e.g. CocoMetric's rounded bbox_mAP) does not replace it."""
    return {**record['metrics'], **record['costs'],
            **flops_convention_entry(record['costs'], record.get('flops_convention')),
            score_name: record['score']}


@dataclass
class Result:
    """The score of one candidate, higher is better, plus its costs.

    ``costs`` holds resources such as ``flops`` (see :data:`FLOPS_CONVENTIONS`),
    ``params`` and ``seconds``;
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
