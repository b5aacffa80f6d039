"""Write tests/golden/xor/tiny_int4_v2.json: a variant-2 record (docs/codecs/xor.md §11); with
--v3, tiny_int4_v3.json: the same tensor as a variant-3 record (§12).

A 6 x 64 int4 tensor, about 60 % pruned, row 3 (slice 3 of n_out 64) all pruned; kept
magnitudes mostly 4..7, so the magnitude MSB plane is mostly ones (coded inverted, "zeros").
The stream length is forced to 2 busy slices so that the record has register resets inside it.

    python scripts/make_xor_v2_golden.py [--v3]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from xorc.codecs.xor import seqencode
from xorc.codecs.xor.decode import decode
from xorc.codecs.xor.encode import finish, solve_tensor
from xorc.codecs.xor.options import XorOptions
from xorc.tensor import QuantTensor

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden" / "xor"


def main() -> None:
    rng = np.random.default_rng(2022)
    big, small = rng.integers(4, 8, (6, 64)), rng.integers(1, 4, (6, 64))
    mag = np.where(rng.random((6, 64)) < 0.85, big, small)
    v = (mag * np.where(rng.random((6, 64)) < 0.5, -1, 1)).astype(np.int16)
    v[rng.random((6, 64)) < 0.6] = 0
    v[3] = 0
    q = QuantTensor("t", v, 4, np.ones(1, np.float32), None)
    variant = 3 if sys.argv[1:] == ["--v3"] else 2
    seqencode.MIN_STREAM = 2
    seqencode.STREAM_LANES = 10**9
    if variant == 3:
        from xorc.codecs.xor import adaptencode

        adaptencode.stream_length = seqencode.stream_length
    e = finish(solve_tensor(q, XorOptions(variant=variant)), None, fallback=False)
    assert np.array_equal(decode(q.shape, 4, e.params, e.streams), v)
    doc = {
        "note": (
            f"codec xor (docs/codecs/xor.md §{10 + variant - 1}), variant {variant}: a 6x64 int4 "
            "tensor, ~60% pruned, row 3 all pruned (no seed), register streams of 2 busy "
            "slices, plane 1 coded inverted at rate 0. decode(shape, bits, params, streams) "
            "must equal 'values'."
        ),
        "shape": list(v.shape),
        "bits": 4,
        "params": e.params,
        "streams": {k: s.hex() for k, s in e.streams.items()},
        "values": v.tolist(),
    }
    out = GOLDEN / f"tiny_int4_v{variant}.json"
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(out, e.params)


if __name__ == "__main__":
    main()
