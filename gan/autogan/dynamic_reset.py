"""AutoGAN's dynamic reset (reference sheet 2.5): detect a collapsed shared GAN from flat losses.

Two rolling windows hold the latest generator losses and discriminator hinge
losses. Once the generator window is full, a population variance below the
threshold in either window says the shared GAN has collapsed (under mode
collapse the hinge loss barely moves) and its G and D should be re-created.

Unlike the official code, the windows are part of the checkpoint, so a resumed
search detects a collapse at the same step as an uninterrupted one.
"""
from __future__ import annotations

from collections import deque

WINDOW = 500
THRESHOLD = 1e-3


def population_variance(values) -> float:
    """The variance with divisor ``len(values)``, as the official ``RunningStats.get_var``."""
    count = len(values)
    mean = sum(values) / count
    return sum((value - mean) ** 2 for value in values) / count


class DynamicReset:
    """The loss windows and the collapse test, checked at every D step."""

    def __init__(self, window: int = WINDOW, threshold: float = THRESHOLD):
        self.window = window
        self.threshold = threshold
        self.g_losses: deque[float] = deque(maxlen=window)
        self.d_losses: deque[float] = deque(maxlen=window)

    def push_g_loss(self, loss: float) -> None:
        self.g_losses.append(float(loss))

    def push_d_loss(self, loss: float) -> None:
        self.d_losses.append(float(loss))

    def should_reset(self) -> bool:
        """Whether either window's variance fell below the threshold; False until the G window is full."""
        if len(self.g_losses) < self.window:
            return False
        return any(population_variance(losses) < self.threshold
                   for losses in (self.g_losses, self.d_losses) if losses)

    def clear(self) -> None:
        self.g_losses.clear()
        self.d_losses.clear()

    def state_dict(self) -> dict:
        # Plain lists and floats: loadable with torch.load(weights_only=True).
        return {'window': self.window, 'threshold': self.threshold,
                'g_losses': list(self.g_losses), 'd_losses': list(self.d_losses)}

    def load_state_dict(self, state: dict) -> None:
        self.window = int(state['window'])
        self.threshold = float(state['threshold'])
        self.g_losses = deque(map(float, state['g_losses']), maxlen=self.window)
        self.d_losses = deque(map(float, state['d_losses']), maxlen=self.window)
