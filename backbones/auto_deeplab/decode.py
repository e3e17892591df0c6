"""Decoding a searched Auto-DeepLab: the cell genotype from alpha, the path from beta.

Pure functions on tensors or nested lists (anything ``torch.as_tensor`` takes).
Weights holding NaN or infinity (a search that diverged) are refused: any
arch decoded from them would be arbitrary.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from nas_tasks.errors import NasError

from .arch import NUM_LEVELS, blocks_for_edges, edge_index
from .ops import PRIMITIVES

_NONE = PRIMITIVES.index('none')


def _finite_weights(weights: Any, name: str) -> torch.Tensor:
    """``weights`` as a float64 CPU tensor; a NasError if any entry is NaN or infinite."""
    tensor = torch.as_tensor(weights, dtype=torch.float64).detach().cpu()
    if not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise NasError(f'the architecture weights {name} hold {bad} NaN or infinite value(s), so no '
                       'architecture can be decoded from them; did the search diverge? Decode the '
                       'weights of a checkpoint from before it did')
    return tensor


def decode_genotype(alpha: Any) -> list[list]:
    """The discrete cell of the op weights ``alpha`` [edges, 8] (softmax rows).

    For each block (as in DARTS and the paper, section 4.3) the two incoming
    edges with the largest non-'none' op weight are kept, each with its best
    non-'none' op; 'none' is never chosen. Returns ``cell`` as in the arch:
    two ``[input, op]`` entries per block, inputs in increasing order, with
    inputs numbered 0 = H^{l-2}, 1 = H^{l-1}, 2 + j = block j. Ties go to the
    lower input / the op earlier in PRIMITIVES.
    """
    weights = _finite_weights(alpha, 'alpha')
    if weights.dim() != 2 or weights.shape[1] != len(PRIMITIVES):
        raise ValueError(f'alpha must be [edges, {len(PRIMITIVES)}], got {tuple(weights.shape)}')
    blocks = blocks_for_edges(weights.shape[0])
    candidates = [i for i in range(len(PRIMITIVES)) if i != _NONE]
    cell = []
    for block in range(blocks):
        best = []                      # (strength, input, op index) per input
        for source in range(block + 2):
            row = weights[edge_index(block, source)].tolist()
            op = max(candidates, key=lambda i: (row[i], -i))
            best.append((row[op], source, op))
        kept = sorted(best, key=lambda item: (-item[0], item[1]))[:2]
        cell += [[source, PRIMITIVES[op]] for _, source, op in sorted(kept, key=lambda k: k[1])]
    return cell


def viterbi_path(beta: Any) -> list[int]:
    """The most probable path through the trellis, as levels (0..3) per layer.

    ``beta`` [L, 4, 3] holds normalised transition weights indexed
    ``[layer, source level, direction]`` (direction 0 = to the finer level,
    1 = same, 2 = to the coarser level); the path starts from the stem at
    level 0 and maximises the product of the weights of its L transitions
    (sums of logs; zero weights are impossible moves). Ties go to the lower
    source level and, at the end, the lower final level.
    """
    weights = _finite_weights(beta, 'beta')
    if weights.dim() != 3 or tuple(weights.shape[1:]) != (NUM_LEVELS, 3):
        raise ValueError(f'beta must be [layers, {NUM_LEVELS}, 3], got {tuple(weights.shape)}')
    log_beta = [[[math.log(v) if v > 0 else -math.inf for v in row] for row in layer]
                for layer in weights.tolist()]
    scores = {0: 0.0}                  # log-probability of the best path to each level
    pointers = []                      # per layer: level -> best previous level
    for layer in log_beta:
        new_scores, back = {}, {}
        for target in range(NUM_LEVELS):
            for source in (target - 1, target, target + 1):
                if source not in scores:
                    continue
                score = scores[source] + layer[source][target - source + 1]
                if target not in new_scores or score > new_scores[target]:
                    new_scores[target], back[target] = score, source
        scores = new_scores
        pointers.append(back)
    level = max(sorted(scores), key=lambda k: scores[k])
    path = [level]
    for back in reversed(pointers[1:]):
        level = back[level]
        path.append(level)
    return path[::-1]
