"""Where per-tensor work runs: in this process, in a pool of worker processes (`--jobs N`), or
on a Dask distributed cluster (`--executor dask:ADDRESS`; the optional extra `distributed`).

Every executor yields the results in the order of the items, whatever order they finish in,
so the blob is the same bytes for every N and every cluster (docs/scale.md). At most
`WINDOW_PER_WORKER` items per worker are in flight, which bounds the results held.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any, Protocol, TypeVar

from xorc.errors import UsageError, WorkerDied

T = TypeVar("T")
R = TypeVar("R")

WINDOW_PER_WORKER = 2
MIN_POOL_BYTES = 16 << 20  # with the default --jobs, a model this small is encoded inline


class Executor(Protocol):
    def map(self, fn: Callable[[T], R], items: Iterable[T], names: list[str]) -> Iterator[R]: ...

    def close(self) -> None: ...


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class Inline:
    """Everything in this process, one item at a time."""

    def map(self, fn: Callable[[T], R], items: Iterable[T], names: list[str]) -> Iterator[R]:
        return (fn(item) for item in items)

    def close(self) -> None:
        pass


def _in_order(
    submit: Callable[[T], Any],
    items: Iterable[T],
    names: list[str],
    window: int,
    died: type[BaseException],
    who: str,
) -> Iterator[R]:
    """Submit items keeping `window` in flight; yield their results in item order. A future
    failing with `died` (its worker is gone) is WorkerDied, naming the tensor."""
    pending: deque[tuple[Any, str]] = deque()

    def result(fut: Any, name: str) -> R:
        try:
            return fut.result()
        except died:
            raise WorkerDied(
                f"{who} died while encoding tensor {name!r} (killed, or out of memory); "
                "nothing was written"
            ) from None

    for item, name in zip(items, names, strict=True):
        pending.append((submit(item), name))
        if len(pending) >= window:
            yield result(*pending.popleft())
    while pending:
        yield result(*pending.popleft())


class Pool:
    """A pool of N worker processes (spawned: no state is inherited but the arguments)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.pool = ProcessPoolExecutor(max_workers=n, mp_context=get_context("spawn"))

    def map(self, fn: Callable[[T], R], items: Iterable[T], names: list[str]) -> Iterator[R]:
        submit = lambda x: self.pool.submit(fn, x)  # noqa: E731
        window = self.n * WINDOW_PER_WORKER
        return _in_order(submit, items, names, window, BrokenProcessPool, "a worker process")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class Dask:
    """A Dask distributed cluster: the scheduler at `address`; workers read the model's files
    by the same absolute paths (shared storage)."""

    def __init__(self, address: str) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise UsageError(
                "--executor dask:... needs Dask distributed: pip install 'xorc[distributed]'"
            ) from None
        try:
            self.client = Client(address, timeout=30, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise UsageError(
                f"--executor dask:{address}: cannot reach the scheduler ({exc})"
            ) from None
        self.n = max(1, sum(self.client.nthreads().values()))

    def map(self, fn: Callable[[T], R], items: Iterable[T], names: list[str]) -> Iterator[R]:
        from distributed import KilledWorker

        submit = lambda x: self.client.submit(fn, x, pure=False)  # noqa: E731
        window = self.n * WINDOW_PER_WORKER
        return _in_order(submit, items, names, window, KilledWorker, "a Dask worker")

    def close(self) -> None:
        self.client.close()


def make(jobs: int | None, executor: str | None, n_items: int, n_bytes: int) -> Executor:
    """The executor for `--jobs` / `--executor`: Dask for "dask:ADDRESS", a pool for N > 1
    (with the default N, one per core, only for models of MIN_POOL_BYTES or more), else inline."""
    if executor is not None and executor != "local":
        kind, _, address = executor.partition(":")
        if kind != "dask" or not address:
            raise UsageError(f"--executor must be local or dask:ADDRESS, got {executor!r}")
        return Dask(address)
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    n = min(cores() if jobs is None else jobs, n_items)
    if n <= 1 or (jobs is None and n_bytes < MIN_POOL_BYTES):
        return Inline()
    return Pool(n)
