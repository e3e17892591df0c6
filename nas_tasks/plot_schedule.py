"""When a sample-based search redraws its plots.

Drawing a plot costs more as the history grows (an AutoGAN search has about
2,000 rounds), so redrawing after every round would make the last rounds
dearer than the first. The plots are redrawn after every ``plot_interval``-th
round, and also after any round that ends ``plot_seconds`` or more after the
last drawing (so a search of slow rounds, such as NAS-FPN's proxy trainings,
still shows fresh plots), and always when the search finishes.
"""
from __future__ import annotations

import time
from typing import Callable

from nas_tasks.validation import check_int, check_number

DEFAULT_PLOT_INTERVAL = 10  # rounds
DEFAULT_PLOT_SECONDS = 300.0  # wall time; None: by rounds only
PLOT_SETTINGS = ('plot_interval', 'plot_seconds')


class PlotSchedule:
    """Whether the plots are due after a round; the clock starts at construction
    (a resumed search counts its seconds from its restart)."""

    def __init__(self, every_rounds: int = DEFAULT_PLOT_INTERVAL,
                 every_seconds: float | None = DEFAULT_PLOT_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.every_rounds = check_int('search.plot_interval', every_rounds,
                                      hint='redraw the plots after every that many rounds')
        if every_seconds is not None:
            check_number('search.plot_seconds', every_seconds, inclusive=False)
        self.every_seconds = every_seconds
        self._clock = clock
        self._last_drawn = clock()

    @classmethod
    def from_settings(cls, settings: dict) -> 'PlotSchedule':
        """From a config's ``search`` settings (``plot_interval``, ``plot_seconds``)."""
        return cls(settings.get('plot_interval', DEFAULT_PLOT_INTERVAL),
                   settings.get('plot_seconds', DEFAULT_PLOT_SECONDS))

    def due(self, rounds_done: int) -> bool:
        """After ``rounds_done`` rounds (counting from the search's start), are the plots due?"""
        if rounds_done % self.every_rounds == 0:
            return True
        return self.every_seconds is not None and self._clock() - self._last_drawn >= self.every_seconds

    def drawn(self) -> None:
        """The plots were just drawn: the wall-time interval starts again."""
        self._last_drawn = self._clock()
