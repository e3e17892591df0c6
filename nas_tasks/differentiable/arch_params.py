"""Architecture parameters of a differentiable search, and how ops are weighted by them."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from nas_tasks.seeding import seed_for


class ArchParameters(nn.Module):
    """Named groups of architecture logits, e.g. ``alpha`` ``[edges, ops]``.

    ``softmax(name)`` normalises over the last dimension (the DARTS
    relaxation). In single-path mode ``op_weights(name)`` instead samples one
    op per edge from that softmax (uniformly while ``uniform`` is set, i.e.
    before architecture updates start) and returns straight-through weights:
    one-hot in value, softmax in gradient. Samples depend only on the seed
    and the step passed to :meth:`resample`, so every rank draws the same path
    and a resumed run draws the same paths as an uninterrupted one.

    Inside :meth:`all_paths` a single-path model runs every op again,
    weighted by the softmax (FNA's architecture steps: one sampled path per
    weight step, the whole relaxation per architecture step).
    """

    def __init__(self, shapes: dict[str, tuple[int, ...]], init_scale: float = 1e-3,
                 seed: int = 0, single_path: bool = False):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.logits = nn.ParameterDict({
            name: nn.Parameter(init_scale * torch.randn(*shape, generator=generator))
            for name, shape in shapes.items()})
        self.seed = seed
        self.single_path = single_path
        self.uniform = True
        self.relaxed = False  # True inside all_paths()
        self._step = 0
        self._sampled: dict[str, torch.Tensor] = {}

    def names(self) -> list[str]:
        return list(self.logits.keys())

    def softmax(self, name: str) -> torch.Tensor:
        return torch.softmax(self.logits[name], dim=-1)

    def resample(self, step: int) -> None:
        """Draw the single path used by the next forward passes."""
        self._step = step
        self._sampled.clear()

    @contextmanager
    def all_paths(self) -> Iterator[None]:
        """Within the block, :meth:`op_weights` gives the softmax and runs every op."""
        previous, self.relaxed = self.relaxed, True
        try:
            yield
        finally:
            self.relaxed = previous

    def sampled_indices(self, name: str) -> torch.Tensor:
        """The op index per edge drawn for the current step (single-path mode)."""
        if name not in self._sampled:
            logits = self.logits[name].detach()
            probs = (torch.ones_like(logits) if self.uniform else torch.softmax(logits, -1))
            generator = torch.Generator().manual_seed(seed_for(self.seed, f'{name}:{self._step}'))
            flat = probs.reshape(-1, probs.shape[-1]).float().cpu()
            indices = torch.multinomial(flat, 1, generator=generator).squeeze(1)
            self._sampled[name] = indices.reshape(probs.shape[:-1])
        return self._sampled[name]

    def op_weights(self, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(weights, active)``: what to pass to each edge's :class:`MixedOp`.

        ``weights`` has the logits' shape; ``active`` holds the op index per
        edge (a CPU tensor) in single-path mode and is None otherwise (all ops run),
        inside :meth:`all_paths` too.
        """
        probs = self.softmax(name)
        if not self.single_path or self.relaxed:
            return probs, None
        indices = self.sampled_indices(name)  # on the CPU: int(active[i]) needs no device sync
        one_hot = torch.zeros_like(probs).scatter_(-1, indices.to(probs.device).unsqueeze(-1), 1.0)
        return one_hot - probs.detach() + probs, indices
