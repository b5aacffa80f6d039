"""Write tests/golden/dictionary/cases.json from fixed inputs (run by hand, never by the tests).

    python tests/golden/dictionary/make.py

Each case is the record a container would hold (shape, bits, params, streams as hex) plus the
levels the decoder must produce. Regenerating changes the file only if the encoder changed;
review such a diff as a format change (docs/codecs/dictionary.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from xorc.codecs.dictionary.encode import Prepared, encode_prepared
from xorc.codecs.dictionary.options import DictionaryOptions
from xorc.tensor import QuantTensor

HERE = Path(__file__).resolve().parent


def case(
    name: str,
    values: np.ndarray,
    bits: int,
    axis: int | None,
    k: int | None,
    group: int | None,
    zeros: str | None,
) -> dict:
    q = QuantTensor(name, values.astype(np.int16), bits, np.ones(1, dtype=np.float32), axis)
    e = encode_prepared(
        Prepared(q, DictionaryOptions(dict_size=k, dict_group=group)), k, zeros=zeros
    )
    return {
        "name": name,
        "shape": list(values.shape),
        "bits": bits,
        "params": e.params,
        "streams": {key: data.hex() for key, data in e.streams.items()},
        "expected": e.decoded.ravel().tolist(),
    }


def main() -> None:
    rng = np.random.default_rng(20261122)
    small = np.array([[3, -1, 0], [7, 3, -5]])
    laplace = np.clip(np.rint(rng.laplace(0, 6, size=(4, 24))), -31, 31)
    sparse = laplace * (rng.random(laplace.shape) < 0.2)
    peaked = np.clip(np.rint(rng.laplace(0, 2, size=(6, 40))), -31, 31)
    cases = [
        case("entry_fixed", small, 4, 0, 4, None, None),
        case("entry_fixed_6bit", laplace, 6, 0, 16, None, None),
        case("entry_huffman", peaked, 6, 0, 16, None, None),
        case("mask_groups", sparse, 6, 0, 4, 2, "mask"),
        case("runs", sparse, 6, 0, 8, None, "runs"),
        case("none_axis1_group1", np.array([[1, 2, -3], [4, -5, 6]]), 4, 1, 2, 1, None),
        case("all_zero", np.zeros((3, 2)), 8, 0, 16, None, None),
    ]
    (HERE / "cases.json").write_text(json.dumps(cases, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
