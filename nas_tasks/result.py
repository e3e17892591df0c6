"""What an estimator returns for one candidate architecture."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Result:
    """The score of one candidate, higher is better, plus its costs.

    ``costs`` holds resources such as ``flops``, ``params`` and ``seconds``;
    ``metrics`` holds everything else worth logging.
    """

    score: float
    costs: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> 'Result':
        return cls(score=float(data['score']), costs=dict(data.get('costs', {})),
                   metrics=dict(data.get('metrics', {})))
