"""Write tests/golden/insitu/cases.json from fixed inputs (run by hand, never by the tests).

    PYTHONPATH=$PWD python scripts/make_insitu_golden.py

Each case is the record a container would hold (shape, bits, params, streams as hex) plus the
levels the decoder must produce (docs/codecs/insitu.md). Regenerating changes the file only if
the encoder changed; review such a diff as a format change.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from xorc.codecs.insitu.encode import Prepared
from xorc.codecs.insitu.options import InsituOptions
from xorc.quantize import quantize
from xorc.tensor import QuantTensor

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "insitu" / "cases.json"


def _low_rank(rng: np.random.Generator, shape: tuple[int, ...], axis: int, rank: int) -> np.ndarray:
    rows = shape[axis]
    cols = int(np.prod(shape)) // rows
    m = rng.normal(size=(rows, rank)) @ rng.normal(size=(rank, cols))
    m += 0.05 * rng.normal(size=m.shape)
    rest = shape[:axis] + shape[axis + 1 :]
    return np.moveaxis(m.reshape(rows, *rest), 0, axis)


def case(name: str, w: np.ndarray, bits: int, axis: int, config: tuple[int, ...]) -> dict:
    levels, scales = quantize(w, bits, axis)
    q = QuantTensor(name, levels, bits, scales, axis)
    enc = Prepared(q, InsituOptions(config=config)).choose(1.0)  # type: ignore[arg-type]
    assert enc.codec == 4, name
    return {
        "name": name,
        "shape": list(w.shape),
        "bits": bits,
        "params": enc.params,
        "streams": {k: v.hex() for k, v in enc.streams.items()},
        "expected": enc.decoded.ravel().tolist(),
    }


def main() -> None:
    rng = np.random.default_rng(18)
    cases = [
        case("gemm_level2", _low_rank(rng, (6, 10), 0, 2), 8, 0, (0, 2, 4, 0, 4)),
        case("conv_two_levels", _low_rank(rng, (8, 4, 3, 3), 0, 3), 8, 0, (2, 3, 3, 6, 3)),
        case("matmul_axis1", _low_rank(rng, (12, 5), 1, 2), 6, 1, (0, 3, 5, 0, 5)),
        case("conv_q4_bits8", _low_rank(rng, (4, 2, 2, 2), 0, 2), 4, 0, (1, 2, 8, 8, 8)),
        case("depthwise", _low_rank(rng, (6, 1, 3, 3), 0, 2), 8, 0, (0, 2, 3, 0, 3)),
    ]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(cases, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
