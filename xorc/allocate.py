"""Per-layer sparsity with OBS pruning and `--sparsity-scope global` (docs/reconstruction.md).

`--sparsity S` then means: at least S of all reconstructed weights together are zero, not S of
each tensor. Each layer's sparsity is chosen from GRID (ALIGNED_GRID with --prune-structure) by
a greedy path on the measured cost:
every layer starts dense (GPTQ only); the step taken next is the one of least increase in the
layer's relative output error tr(dW H dW^T) / tr(W H W^T) per weight zeroed, each trial being
a real GPTQ / OBS run of that layer at that sparsity. It stops as soon as the zeros (levels
equal to 0, rounding's included) reach ceil(S x n). A layer is only tried one grid step beyond
where it is, so the cost is a few runs per layer, not one per grid point. Layers whose
sparsity a `[[layer]]` rule sets, and layers without an H, keep their own setting and count
with their zeros. The trials skip the clipping search (reconstruct.CLIP_RATIOS); each chosen
layer is then run once with it, kept where it has no fewer zeros. Deterministic: ties go by
layer order.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from xorc.hessian import relative_error
from xorc.quantize import dequantize

if TYPE_CHECKING:
    from xorc.calibrate import InputStats
    from xorc.config import CompressOptions
    from xorc.pipeline import TensorJob
    from xorc.tensor import QuantTensor

GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
"""The sparsities a layer may get (the target itself is added when it is above 0.95)."""
ALIGNED_GRID = tuple(round(0.05 * i, 2) for i in range(20))
"""With --prune-structure: steps of 0.05, closer to the units (a 128 x 128 tile is 4 % of
fashion_cnn's fc1), so the allocation does not stop a tile or two short of the target."""


@dataclass(frozen=True)
class Trial:
    """One layer compressed at one sparsity: its relative output error, its zeros, and the
    result (whatever the caller's `run` returns)."""

    error: float
    zeros: int
    result: Any


def choose(
    names: Sequence[str],
    needed: int,
    run: Callable[[str, float], Trial],
    grid: Sequence[float] = GRID,
) -> dict[str, tuple[float, Trial]]:
    """Each layer's sparsity and trial, such that the zeros add up to at least `needed` when
    every layer at the top of `grid` can give them (else every layer ends at the top)."""
    at = {name: (grid[0], run(name, grid[0])) for name in names}
    zeros = sum(t.zeros for _, t in at.values())
    heap: list[tuple[float, int, str, float, Trial]] = []

    def push(i: int, name: str) -> None:
        step = grid.index(at[name][0]) + 1
        if step < len(grid):
            nxt = run(name, grid[step])
            cur = at[name][1]
            cost = (nxt.error - cur.error) / max(nxt.zeros - cur.zeros, 1)
            heapq.heappush(heap, (cost, i, name, grid[step], nxt))

    for i, name in enumerate(names):
        if zeros < needed:
            push(i, name)
    while zeros < needed and heap:
        _, i, name, sparsity, trial = heapq.heappop(heap)
        zeros += trial.zeros - at[name][1].zeros
        at[name] = (sparsity, trial)
        if zeros < needed:
            push(i, name)
    return at


def grid_for(target: float) -> tuple[float, ...]:
    """GRID, with the target added when it is above GRID's top."""
    return GRID if target <= GRID[-1] else (*GRID, target)


def needed_zeros(target: float, total: int, elsewhere: int) -> int:
    """Zeros the allocated layers must give: ceil(target x total) less those elsewhere."""
    return max(math.ceil(target * total - 1e-9) - elsewhere, 0)


def allocate_jobs(
    jobs: list[TensorJob],
    options: CompressOptions,
    stats: dict[str, InputStats],
    quantize: Callable[[TensorJob, CompressOptions, InputStats | None], QuantTensor],
    eligible: Callable[[TensorJob], bool],
) -> None:
    """Quantize every job, the `eligible` ones (reconstructed, with an H, the global
    sparsity) at the sparsities `choose` finds (the job's settings and reconstruction record
    then say which); `quantize(job, options, stats)` is the pipeline's quantize_job."""
    per_tensor = replace(options, sparsity_scope="tensor")
    trials = replace(per_tensor, clip_search=False)  # the search runs once, at the end
    free = [j for j in jobs if _free(j, options, stats, eligible)]
    names = {j.name for j in free}
    elsewhere = 0
    for job in jobs:
        if job.name not in names:
            job.quantized = quantize(job, per_tensor, stats.get(job.name))
            elsewhere += int(np.count_nonzero(job.q.values == 0))
    by_name = {j.name: j for j in free}

    def run(name: str, sparsity: float) -> Trial:
        job = by_name[name]
        trial = replace(job, settings=replace(job.settings, sparsity=sparsity), reconstruction=None)
        q = quantize(trial, trials, stats.get(name))
        w = job.weight.array
        delta = dequantize(q.values, q.scales, q.axis, q.group).astype(np.float64) - w
        hess = stats[name].hessian
        err = relative_error(w, delta, job.weight.axis, hess) if hess is not None else None
        zeros = int(np.count_nonzero(q.values == 0))
        return Trial(1.0 if err is None else err, zeros, (q, trial.reconstruction, trial.aligned))

    total = sum(int(j.weight.array.size) for j in jobs if not j.prequantized)
    needed = needed_zeros(options.sparsity, total, elsewhere)
    grid = ALIGNED_GRID if options.prune_structure else GRID
    for name, (sparsity, trial) in choose([j.name for j in free], needed, run, grid).items():
        job = by_name[name]
        job.settings = replace(job.settings, sparsity=sparsity)
        job.quantized, record, job.aligned = trial.result
        if options.clip_search:  # kept only where it does not lose zeros (S stays met)
            clipped = replace(job, reconstruction=None)
            q = quantize(clipped, per_tensor, stats.get(name))
            if np.count_nonzero(q.values == 0) >= trial.zeros:
                job.quantized, record, job.aligned = q, clipped.reconstruction, clipped.aligned
        job.reconstruction = {**(record or {}), "sparsity": sparsity, "allocation": "global"}


def _free(
    job: TensorJob,
    options: CompressOptions,
    stats: dict[str, InputStats],
    eligible: Callable[[TensorJob], bool],
) -> bool:
    st = stats.get(job.name)
    has_h = st is not None and st.hessian is not None and st.hessian.moment is not None
    own = job.settings.sparsity == options.sparsity and options.pattern is None
    return has_h and own and job.weight.axis is not None and eligible(job)
