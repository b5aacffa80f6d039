"""Structural fuzzing of the blob readers: counts by outcome over many mutated real blobs.

    python benchmarks/fuzz_container.py --count 100000 [--seed 0] [--save DIR] [--minutes M]

The bases are the sample models compressed with every policy (`xorc.format.fuzz` mutates
their records, re-fixing every CRC and the file digest); each mutated blob goes through
`inspect`, `verify` (both decoders), `simulate` and `decompress` in a worker whose address
space is capped (`xorc.format.fuzz_run`). Outcomes: clean error, decoded (ok) or a mismatch
reported, crash, MemoryError, peak RSS growth over 256 MB, timeout over 15 s. SIGINT stops it
and prints the table of the blobs run so far. The target is no
crash, MemoryError, RSS blow-up or timeout. A single process (plus its worker): the machine's
cores are shared. Failures are saved to `--save` as `<outcome>-<n>.xorc` with a `.txt` each.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=0, help="stop after this long (0: no)")
    parser.add_argument("--save", type=Path, help="folder for the failing blobs")
    args = parser.parse_args()
    from xorc.format.fuzz import mutate
    from xorc.format.fuzz_run import FAILURES, OUTCOMES, Runner

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        blobs = bases(Path(tmp))
        print(f"{len(blobs)} base blobs built in {time.perf_counter() - started:.0f} s", flush=True)
    counts: Counter[str] = Counter()
    sites: Counter[str] = Counter()
    rng = random.Random(args.seed)
    started = time.perf_counter()
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    try:
        with Runner(warmup=tuple(b for _, b in blobs)) as runner:
            for i in range(args.count):
                name, base = blobs[i % len(blobs)]
                blob = mutate(base, rng, rounds=rng.choice((1, 1, 2, 3)))
                if len(blob) > MAX_BLOB:  # the targets are for blobs under 1 MB
                    counts["over 1 MB, skipped"] += 1
                    continue
                result = runner.run(blob)
                counts[result.outcome] += 1
                if result.outcome in FAILURES:
                    sites[result.detail.split("|", 3)[:3].__str__()] += 1
                    if args.save:
                        (args.save / f"{result.outcome}-{i}.xorc").write_bytes(blob)
                        (args.save / f"{result.outcome}-{i}.txt").write_text(
                            f"{name}\n{result.detail}\n"
                        )
                if (i + 1) % 1000 == 0:
                    elapsed = time.perf_counter() - started
                    print(f"{i + 1} blobs, {elapsed:.0f} s: {dict(counts)}", flush=True)
                if args.minutes and time.perf_counter() - started > 60 * args.minutes:
                    break
    except KeyboardInterrupt:  # Ctrl-C (or kill -INT): the table of what ran so far
        pass
    total = sum(counts.values())
    print(f"\n{total} mutated blobs, seed {args.seed}, {time.perf_counter() - started:.0f} s")
    print("| outcome | blobs |\n|---|---|")
    for outcome in OUTCOMES:
        print(f"| {outcome} | {counts[outcome]} |")
    print(f"| (over 1 MB, not run) | {counts['over 1 MB, skipped']} |")
    for site, n in sites.most_common():
        print(f"failure site {site}: {n}")
    return 1 if any(counts[o] for o in FAILURES) else 0


if __name__ == "__main__":
    sys.exit(main())
