"""Run hostile blobs through every reader, in a worker process with capped memory and time.

`exercise` does what `inspect`, `verify`, `simulate` and `decompress` do with a blob (each on
its own, so that a failure in one does not hide another) and names the outcome: `ok` (read
and decoded), `mismatch` (decoded, and a digest mismatch reported: `BitMismatch`), `clean` (a
documented blob error, `xorc.errors.BlobError`), or `crash` (any other exception). `Runner`
feeds blobs to a worker (`python -m xorc.format.fuzz_run`) whose address space is capped with
`resource.setrlimit(RLIMIT_AS)`, so an allocation above the cap is a `memory` outcome rather
than a swapping machine; a peak RSS growth above `rss_mb` is `rss`, a blob taking longer than
`timeout` seconds is `timeout` (the worker is then restarted). The peak RSS is measured per
blob (VmHWM, reset before each through /proc/self/clear_refs), so that heap growth left over
from earlier blobs does not count.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import struct
import subprocess
import sys
import traceback
from dataclasses import dataclass

OUTCOMES = ("clean", "ok", "mismatch", "crash", "memory", "rss", "timeout")
FAILURES = ("crash", "memory", "rss", "timeout")
_RANK = {"ok": 0, "clean": 1, "mismatch": 1, "crash": 2, "memory": 3}


@dataclass(frozen=True)
class Result:
    """One blob's outcome; `detail` names the command and the exception for a failure."""

    outcome: str
    detail: str = ""


def _where(exc: BaseException) -> str:
    """file:line function of the innermost xorc frame of a traceback."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "xorc" in f.filename]
    if not frames:
        return "?"
    f = frames[-1]
    return f"{f.filename[f.filename.rfind('xorc') :]}:{f.lineno} {f.name}"


def _inspect(blob: bytes) -> None:
    from xorc.report import render_text, summarize

    summary = summarize(blob)
    render_text(summary)
    json.dumps(summary.to_json(), allow_nan=False)


def _verify(blob: bytes) -> None:
    from xorc.errors import BitMismatch
    from xorc.format import read_bytes
    from xorc.verify import check_bit_exact

    _, _, mismatches = check_bit_exact(read_bytes(blob), decoder="both")
    if mismatches:
        raise BitMismatch(mismatches[0])


def _simulate(blob: bytes) -> None:
    from xorc import datapath, onnx_io
    from xorc.format import read_bytes

    container = read_bytes(blob)
    cfg = datapath.load_config(None, None)
    result = datapath.simulate(container, cfg, onnx_io.layer_macs(container.graph))
    json.dumps(result.to_json(), allow_nan=False)
    datapath.render_text(result)
    datapath.area_estimate(container, cfg).to_json()


def _decompress(blob: bytes) -> None:
    from xorc.decode import rebuild_model
    from xorc.errors import BitMismatch
    from xorc.format import read_bytes
    from xorc.verify import check_bit_exact

    container = read_bytes(blob)
    levels, _, mismatches = check_bit_exact(container)
    if mismatches:
        raise BitMismatch(mismatches[0])
    rebuild_model(container, levels)


COMMANDS = {
    "inspect": _inspect,
    "verify": _verify,
    "simulate": _simulate,
    "decompress": _decompress,
}


def outcomes(blob: bytes) -> dict[str, str]:
    """Each command's outcome on `blob`: "ok", or the name of the `xorc.errors` class it
    raised (other exceptions propagate)."""
    from xorc.errors import XorcError

    out = {}
    for name, command in COMMANDS.items():
        try:
            command(blob)
            out[name] = "ok"
        except XorcError as exc:
            out[name] = type(exc).__name__
    return out


def exercise(blob: bytes) -> Result:
    """Every command on `blob`; the worst outcome, with the first failure's detail."""
    from xorc.errors import BitMismatch, BlobError

    worst = Result("ok")
    for name, command in COMMANDS.items():
        try:
            command(blob)
            result = Result("ok")
        except BitMismatch:
            result = Result("mismatch")
        except BlobError:
            result = Result("clean")
        except MemoryError as exc:
            result = Result("memory", f"{name}|MemoryError|{_where(exc)}")
        except Exception as exc:
            result = Result("crash", f"{name}|{type(exc).__name__}|{_where(exc)}|{exc}"[:300])
        if _RANK[result.outcome] > _RANK[worst.outcome]:
            worst = result
    return worst


def _vm_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _status(field: str) -> int:
    """A size field of /proc/self/status (VmRSS, VmHWM), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_peak() -> int:
    """Reset the peak RSS (VmHWM) to the current RSS, which it returns; where the kernel does
    not allow it, the peak since the start of the process counts (ru_maxrss)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status("VmRSS")
    except OSError:
        return 0


def _peak_since(start: int) -> int:
    """Growth of the peak RSS over `start` (from `_reset_peak`)."""
    return _status("VmHWM") - start if start else _maxrss()


def worker(as_mb: int) -> None:
    """Read length-prefixed blobs on stdin, answer one JSON line each on stdout."""
    for command in COMMANDS.values():  # import everything before the cap
        with contextlib.suppress(Exception):
            command(b"")
    cap = _vm_bytes() + (as_mb << 20)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    out = sys.stdout.buffer
    out.write(json.dumps({"ready": 0 if _reset_peak() else _maxrss()}).encode() + b"\n")
    out.flush()
    stdin = sys.stdin.buffer
    while header := stdin.read(4):
        (size,) = struct.unpack("<I", header)
        blob = stdin.read(size)
        start = _reset_peak()
        result = exercise(blob)
        line = {"outcome": result.outcome, "detail": result.detail, "rss": _peak_since(start)}
        out.write(json.dumps(line).encode() + b"\n")
        out.flush()


class Runner:
    """A worker process fed one blob at a time; restarted after a timeout or RSS growth."""

    def __init__(
        self,
        timeout: float = 15.0,
        rss_mb: int = 256,
        as_mb: int = 1024,
        warmup: tuple[bytes, ...] = (),
    ) -> None:
        """`warmup`: valid blobs each new worker decodes first, unmeasured (lazy imports and
        the EBPC parser's JIT compilation are not a hostile blob's doing)."""
        self.timeout, self.rss_limit, self.as_mb = timeout, rss_mb << 20, as_mb
        self.proc: subprocess.Popen[bytes] | None = None
        self.baseline = 0
        self.warmup = warmup

    def _start(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "xorc.format.fuzz_run", str(self.as_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None
        self.baseline = json.loads(proc.stdout.readline())["ready"]
        assert proc.stdin is not None
        for blob in self.warmup:
            proc.stdin.write(struct.pack("<I", len(blob)) + blob)
            proc.stdin.flush()
            proc.stdout.readline()
        self.proc = proc
        return proc

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def run(self, blob: bytes) -> Result:
        proc = self.proc or self._start()
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(struct.pack("<I", len(blob)) + blob)
            proc.stdin.flush()
        except BrokenPipeError:
            self.close()
            return Result("crash", "worker died")
        ready, _, _ = select.select([proc.stdout], [], [], self.timeout)
        line = proc.stdout.readline() if ready else b""
        if not line:
            self.close()
            return Result("timeout" if not ready else "crash", "worker killed or died")
        answer = json.loads(line)
        if answer["rss"] - self.baseline > self.rss_limit:
            self.close()
            return Result("rss", f"peak RSS grew by {(answer['rss'] - self.baseline) >> 20} MB")
        return Result(answer["outcome"], answer["detail"])

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    worker(int(sys.argv[1]) if len(sys.argv) > 1 else 1024)
