"""Optional compiled BPC parser: one sequential walk per stream, compiled with numba.

The numpy parser in `bpc_parse` finds the symbol boundaries by speculative parallel parsing.
Its cost is a few hundred sequential numpy steps per call, however small the stream, which caps
one `decode` call per feature map at about 15-20 MB/s (docs/codecs/ebpc.md §12).
A sequential walk is the obvious algorithm, but in Python it would be 1000 times too slow.
Compiled, it takes a few nanoseconds per step.

When numba is installed (`pip install 'xorc[fast]'`), `bpc_parse.parse_bpc` uses this walk
instead. It uses the same step table and records the same keys, so the output, the checks and
the error messages are identical. numba is optional: xorc's runtime dependencies stay click,
numpy, onnx, onnxruntime and tqdm. Set the environment variable XORC_JIT=0 to use the numpy
parser even when numba is present.

The kernel is compiled on first use, which takes about a second, and cached on disk (numba's
`cache=True`). Later processes skip the compile but still pay about 0.7 s on first use: 0.3 s
to import numba and 0.4-0.5 s to load the cached kernel.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache

import numpy as np
from numpy.typing import NDArray

Walker = Callable[
    [NDArray[np.int64], NDArray[np.int32], NDArray[np.int64], NDArray[np.int64]],
    tuple[NDArray[np.int32], NDArray[np.int64]],
]


_GUESS_BITS_PER_STEP = 6  # sizes the key buffer; a stream with shorter steps gets a second try


def compiled_walker() -> Walker | None:
    """The compiled parser, or None if numba is missing or XORC_JIT=0."""
    if os.environ.get("XORC_JIT", "1").strip() == "0":
        return None
    return _load()


@contextmanager
def using(parser: str) -> Iterator[None]:
    """Inside the block, parse with `parser`: "numpy" or "compiled" (sets XORC_JIT). For
    benchmarks and tests that compare the two.

    Raises:
        ValueError: an unknown parser, or "compiled" without numba.
    """
    if parser not in ("numpy", "compiled"):
        raise ValueError(f"unknown BPC parser {parser!r}: use 'numpy' or 'compiled'")
    if parser == "compiled" and _load() is None:
        raise ValueError("the compiled BPC parser needs numba: pip install 'xorc[fast]'")
    before = os.environ.get("XORC_JIT")
    os.environ["XORC_JIT"] = "1" if parser == "compiled" else "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ["XORC_JIT"]
        else:
            os.environ["XORC_JIT"] = before


def _walk_steps(
    units: NDArray[np.int64],
    table: NDArray[np.int32],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    out: NDArray[np.int32],
    steps: NDArray[np.int64],
) -> int:
    """Parse stream i (bits [starts[i], ends[i]) of the buffer read through `units`, the
    `bits.unit_windows` form) from plane state 0, one step-table step at a time. Writes the keys
    to `out` and the step count of each stream to `steps`. Returns the total number of keys, or
    -1 if `out` is too small.

    This is the loop body of `bpc_parse._run_round0` for a single lane. numba compiles it."""
    n = 0
    for i in range(starts.size):
        pos = starts[i]
        end = ends[i]
        state = 0
        first = n
        while pos < end:
            if n == out.size:
                return -1
            window = (units[pos >> 5] >> (48 - (pos & 31))) & 0xFFFF  # as bits.peek_units
            key = state | window
            out[n] = key
            n += 1
            t = table[key]
            pos += t & 0x1F  # bpc_tables.LEN_MASK
            state = t & ~0xFFFF  # bpc_tables.STATE_MASK
        steps[i] = n - first
    return n


@cache
def _load() -> Walker | None:
    try:
        import numba
    except Exception:  # a missing or broken numba: the numpy parser takes over
        return None
    try:
        kernel = numba.njit(cache=True, nogil=True)(_walk_steps)
    except RuntimeError:  # no writable cache location: compile in every process instead
        kernel = numba.njit(nogil=True)(_walk_steps)

    def walk(
        units: NDArray[np.int64],
        table: NDArray[np.int32],
        starts: NDArray[np.int64],
        ends: NDArray[np.int64],
    ) -> tuple[NDArray[np.int32], NDArray[np.int64]]:
        """The keys of every step of every stream, in order, and the step count per stream."""
        starts = np.ascontiguousarray(starts, dtype=np.int64)
        ends = np.ascontiguousarray(ends, dtype=np.int64)
        bits = int((ends - starts).sum())
        steps = np.empty(starts.size, dtype=np.int64)
        # real streams take 8 to 16 bits a step; every step takes at least 2 (a base is W >= 8
        # bits, a symbol at least 2), so the second size always suffices
        for size in (bits // _GUESS_BITS_PER_STEP, bits // 2):
            out = np.empty(size + starts.size + 16, dtype=np.int32)
            n = kernel(units, table, starts, ends, out, steps)
            if n >= 0:
                return out[:n], steps
        raise AssertionError("unreachable: a parse step consumes at least 2 bits")

    return walk
