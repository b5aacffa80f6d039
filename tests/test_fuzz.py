"""Hostile blobs: records mutated past the checksums (xorc.format.fuzz) must end in a documented
error or a clean decode, in bounded memory and time, and every one the fuzzer found stays.

The bounded hypothesis run here feeds mutated real blobs to a worker whose address space is
capped (`resource.setrlimit`, xorc.format.fuzz_run); benchmarks/fuzz_container.py is the long
run. `golden/malformed/fuzz/` holds the blobs that once crashed xorc, each with the outcome of
every command (`manifest.json`: "ok" or the error class) and what it did before the fix.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from conftest import GOLDEN, SAMPLES
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from xorc import api
from xorc.cli import cli
from xorc.config import CompressOptions
from xorc.errors import BlobError
from xorc.format import read_bytes
from xorc.format.fuzz import mutate, split
from xorc.format.fuzz_run import FAILURES, Runner, outcomes

EXAMPLES = 600 if os.environ.get("CI") else 150
"""Mutated blobs per run: the bounded share of benchmarks/fuzz_container.py (CI=1 runs more)."""
FUZZ = GOLDEN / "malformed" / "fuzz"
MANIFEST = json.loads((FUZZ / "manifest.json").read_text())
BASES = (  # every codec: digits_mlp's xor tensors fall back to raw, fashion_cnn_sparse's do not
    ("fashion_cnn_sparse", "all"),
    ("digits_mlp", "dictionary"),
    ("digits_mlp", "ebpc"),
    ("digits_mlp", "raw"),
    ("digits_mlp", "insitu"),  # --insitu-tolerance 0.2: every tensor generated
)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_fuzz_found_blob_gets_its_outcome(name: str) -> None:
    assert outcomes((FUZZ / name).read_bytes()) == MANIFEST[name]["expected"]


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_fuzz_found_blob_one_line_on_the_command_line(name: str) -> None:
    expected = MANIFEST[name]["expected"]
    for command in ("inspect", "verify"):
        result = CliRunner().invoke(cli, [command, str(FUZZ / name)])
        assert result.exit_code == (0 if expected[command] == "ok" else 4), result.stderr
        if result.exit_code:
            assert result.stderr.count("\n") == 1 and result.stderr.startswith("xorc: error:")


def test_fuzz_corpus_is_current() -> None:
    assert {p.name for p in FUZZ.glob("*.xorc")} == set(MANIFEST)


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """Real models compressed so that every codec has records."""
    folder = tmp_path_factory.mktemp("bases")
    out = []
    for model, policy in BASES:
        path = folder / f"{model}.{policy}.xorc"
        tolerance = 0.2 if policy == "insitu" else None
        options = CompressOptions(policy=policy, bits=4, insitu_tolerance=tolerance)
        api.compress(SAMPLES / f"{model}.onnx", path, options)
        out.append(path.read_bytes())
    aligned = folder / "aligned.xorc"  # pow2 scales, a structure and presence stream (issue 19)
    options = CompressOptions(policy="raw", bits=4, sparsity=0.5, prune_structure="crossbar",
                              crossbar="crossbar-64-slc", scale_dtype="pow2")  # fmt: skip
    api.compress(SAMPLES / "digits_mlp.onnx", aligned, options)
    out.append(aligned.read_bytes())
    codecs = {t.codec_name for blob in out for t in read_bytes(blob).tensors}
    assert codecs == {"xor", "dictionary", "ebpc", "raw", "insitu"}
    return out


@pytest.fixture(scope="module")
def runner(bases: list[bytes]) -> Iterator[Runner]:
    with Runner(timeout=15.0, rss_mb=256, as_mb=512, warmup=tuple(bases)) as r:
        yield r


def test_mutation_refixes_every_checksum(bases: list[bytes]) -> None:
    """A mutated blob passes the layout, every CRC and the footer: it reaches the records."""
    rng = random.Random(5)
    for base in bases:
        blob = mutate(base, rng, rounds=2)
        assert blob != base
        split(blob)  # the layout, steps 1 to 4
        try:
            read_bytes(blob)
        except BlobError as exc:
            assert "CRC" not in str(exc) and "SHA-256" not in str(exc)


def test_records_grown_to_the_decoded_size_bound_decode_in_bounded_memory(
    bases: list[bytes], runner: Runner
) -> None:
    """The worst a hostile blob of this size can ask for: each record's shape grown to the most
    weights its codec's bound allows; a clean error or a mismatch, never over the caps."""
    import json

    from xorc.format import v1
    from xorc.format.fuzz import _dumps, to_bound

    grown = 0
    for base in bases:
        bodies, flags = split(base)
        for i in range(len(json.loads(bodies[1][2])["tensors"])):
            doc = json.loads(bodies[1][2])
            if not to_bound(doc["tensors"][i]):
                continue
            blob = v1.write_sections(
                [(k, f, _dumps(doc) if k == v1.Kind.TENSORS else b) for k, f, b in bodies], flags
            )
            result = runner.run(blob)
            assert result.outcome not in FAILURES, result.detail
            grown += 1
    assert grown >= 5


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    which=st.integers(0, len(BASES) - 1),
    seed=st.integers(0, 2**64 - 1),
    rounds=st.integers(1, 3),
)
def test_mutated_blobs_fail_cleanly_in_bounded_memory(
    bases: list[bytes], runner: Runner, which: int, seed: int, rounds: int
) -> None:
    blob = mutate(bases[which], random.Random(seed), rounds)
    assume(len(blob) <= 1 << 20)  # the targets are for blobs under 1 MB
    result = runner.run(blob)
    assert result.outcome not in FAILURES, result.detail


@pytest.mark.parametrize("value", [10**400, 1e300 * 1e300, float("nan"), -1, "12", None])
def test_fmap_figures_must_be_finite_numbers_in_range(value: object) -> None:
    from xorc import datapath
    from xorc.datapath.fmap_traffic import fmap_layers
    from xorc.errors import BadRecord

    layer = {"name": "r", "bits": 8, "raw_bits": 800, "compressed_bits": value}
    with pytest.raises(BadRecord, match="compressed_bits"):
        fmap_layers({"n_inputs": 1, "layers": [layer]}, datapath.load_config(None, None))


@pytest.mark.parametrize("value", [10**400, [1], {"a": 1}, -5, 2.5])
def test_inspect_ignores_an_informational_count_of_the_wrong_kind(
    bases: list[bytes], value: object
) -> None:
    from xorc.format import v1
    from xorc.format.fuzz import _dumps
    from xorc.report import render_text, summarize

    bodies, flags = split(bases[0])
    meta = json.loads(bodies[0][2])
    meta["source_bytes"] = value
    blob = v1.write_sections([(bodies[0][0], bodies[0][1], _dumps(meta)), *bodies[1:]], flags)
    summary = summarize(blob)
    assert summary.totals()["source_model_bytes"] is None
    assert "source model" not in render_text(summary)
    json.dumps(summary.to_json(), allow_nan=False)


@pytest.mark.parametrize(
    "value",
    [
        {"groups": [{"reason": "bias", "n_tensors": 1, "largest": ["b"]}], "n_params": 3},
        {"groups": [{"reason": 7, "n_tensors": 1, "n_params": 3, "largest": []}], "n_params": 3},
        {"groups": "x", "n_params": 3},
        {"n_params": -1},
        [1],
    ],
)
def test_inspect_ignores_a_malformed_uncompressed_list(bases: list[bytes], value: object) -> None:
    """META `uncompressed` is informational: a group with a missing or wrong field is left out,
    a malformed whole is shown as absent (found by the fuzzer: a group without n_params)."""
    from xorc.format import v1
    from xorc.format.fuzz import _dumps
    from xorc.report import render_text, summarize

    bodies, flags = split(bases[0])
    meta = json.loads(bodies[0][2])
    meta["uncompressed"] = value
    blob = v1.write_sections([(bodies[0][0], bodies[0][1], _dumps(meta)), *bodies[1:]], flags)
    summary = summarize(blob)
    assert summary.uncompressed().get("groups", []) == []
    render_text(summary)
    json.dumps(summary.to_json(), allow_nan=False)
