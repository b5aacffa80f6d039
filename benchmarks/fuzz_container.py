"""Structural fuzzing of the blob readers: counts by outcome over many mutated real blobs.

    python benchmarks/fuzz_container.py --count 100000 [--seed 0] [--workers 1] [--save DIR]
        [--minutes M]

The bases are the sample models compressed with every policy (`xorc.format.fuzz` mutates
their records, re-fixing every CRC and the file digest); each mutated blob goes through
`inspect`, `verify` (both decoders), `simulate` and `decompress` in a worker whose address
space is capped (`xorc.format.fuzz_run`). Outcomes: clean error, decoded (ok) or a mismatch
reported, crash, MemoryError, peak RSS growth over 256 MB, timeout over 15 s. SIGINT stops it
and prints the table of the blobs run so far. The target is no
crash, MemoryError, RSS blow-up or timeout. Blob i is `mutate(base[i % bases],
Random("SEED:i"))`, so a run's blobs are the same whatever `--workers` (worker processes, each
fed by its own thread; the machine's cores are shared, so 1 by default). Failures are saved to
`--save` as `<outcome>-<i>.xorc` with a `.txt` each.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("digits_mlp", "fashion_cnn_sparse")
POLICIES = ("all", "importance", "dictionary", "ebpc", "raw", "all-v2")  # all-v2: XOR variant 2
MAX_BLOB = 1 << 20


def bases(folder: Path) -> list[tuple[str, bytes]]:
    """Every sample model compressed with every policy (and XOR variant 2), at 4 and 8 bits."""
    from xorc import api
    from xorc.config import CompressOptions

    out = []
    for model in MODELS:
        for policy in POLICIES:
            for bits in (4, 8):
                path = folder / f"{model}.{policy}.{bits}.xorc"
                name, _, v2 = policy.partition("-")
                options = CompressOptions(policy=name, bits=bits, xor_variant=2 if v2 else 1)
                api.compress(ROOT / "sample_models" / f"{model}.onnx", path, options)
                out.append((path.name, path.read_bytes()))
    return out


def blob_at(blobs: list[tuple[str, bytes]], seed: int, i: int) -> tuple[str, bytes]:
    """Mutated blob number `i` of the run with `seed` (and the name of its base)."""
    from xorc.format.fuzz import mutate

    name, base = blobs[i % len(blobs)]
    rng = random.Random(f"{seed}:{i}")
    return name, mutate(base, rng, rounds=rng.choice((1, 1, 2, 3)))


class Tally:
    """Outcome counts and failure sites, shared by the feeding threads."""

    def __init__(self, save: Path | None) -> None:
        self.counts: Counter[str] = Counter()
        self.sites: Counter[str] = Counter()
        self.save, self.lock, self.started = save, threading.Lock(), time.perf_counter()

    def add(self, i: int, name: str, blob: bytes, outcome: str, detail: str) -> None:
        from xorc.format.fuzz_run import FAILURES

        with self.lock:
            self.counts[outcome] += 1
            if outcome in FAILURES:
                self.sites[detail.split("|", 3)[:3].__str__()] += 1
                if self.save:
                    (self.save / f"{outcome}-{i}.xorc").write_bytes(blob)
                    (self.save / f"{outcome}-{i}.txt").write_text(f"{name}\n{detail}\n")
            done = sum(self.counts.values())
            if done % 1000 == 0:
                elapsed = time.perf_counter() - self.started
                print(f"{done} blobs, {elapsed:.0f} s: {dict(self.counts)}", flush=True)


def feed(
    blobs: list[tuple[str, bytes]],
    args: argparse.Namespace,
    indices: itertools.count,
    tally: Tally,
    stop: threading.Event,
) -> None:
    """One worker process: take the next blob index until the count or the time is reached."""
    from xorc.format.fuzz_run import Runner

    with Runner(warmup=tuple(b for _, b in blobs)) as runner:
        while not stop.is_set():
            i = next(indices)
            if i >= args.count:
                return
            if args.minutes and time.perf_counter() - tally.started > 60 * args.minutes:
                return
            name, blob = blob_at(blobs, args.seed, i)
            if len(blob) > MAX_BLOB:  # the targets are for blobs under 1 MB
                tally.add(i, name, blob, "over 1 MB, skipped", "")
                continue
            result = runner.run(blob)
            tally.add(i, name, blob, result.outcome, result.detail)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--minutes", type=float, default=0, help="stop after this long (0: no)")
    parser.add_argument("--save", type=Path, help="folder for the failing blobs")
    args = parser.parse_args()
    from xorc.format.fuzz_run import FAILURES, OUTCOMES

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        blobs = bases(Path(tmp))
        print(f"{len(blobs)} base blobs built in {time.perf_counter() - started:.0f} s", flush=True)
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    tally, stop, indices = Tally(args.save), threading.Event(), itertools.count()
    threads = [
        threading.Thread(target=feed, args=(blobs, args, indices, tally, stop), daemon=True)
        for _ in range(max(1, args.workers))
    ]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.5)
    except KeyboardInterrupt:  # Ctrl-C (or kill -INT): the table of what ran so far
        stop.set()
        for t in threads:
            t.join(20)
    counts = tally.counts
    total = sum(counts.values())
    elapsed = time.perf_counter() - tally.started
    print(f"\n{total} mutated blobs, seed {args.seed}, {args.workers} workers, {elapsed:.0f} s")
    print("| outcome | blobs |\n|---|---|")
    for outcome in OUTCOMES:
        print(f"| {outcome} | {counts[outcome]} |")
    print(f"| (over 1 MB, not run) | {counts['over 1 MB, skipped']} |")
    for site, n in tally.sites.most_common():
        print(f"failure site {site}: {n}")
    return 1 if any(counts[o] for o in FAILURES) else 0


if __name__ == "__main__":
    sys.exit(main())
