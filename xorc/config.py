"""Compression options: defaults, the TOML file (`--config`), per-layer rules, CLI overrides.

Precedence, from weakest to strongest: built-in defaults, the file's top-level keys, command-line
flags, then the file's `[[layer]]` rules for the tensors they match (a rule is more specific
than any global setting). Rules apply in file order; a later matching rule overrides an earlier
one key by key. See README.md, "Configuration file".
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from xorc import policies
from xorc.errors import ConfigError, UsageError

SCOPES = ("tensor", "global")
SCALE_DTYPES = ("bfloat16", "float32", "pow2")
RECONSTRUCT = ("auto", "gptq", "synthetic", "prior", "none")
PRUNE = ("auto", "magnitude", "obs")
ORDERS = ("parallel", "sequential", "asymmetric")
STRUCTURES = ("kernel-group", "crossbar")
LAYER_KEYS = ("bits", "sparsity", "policy", "skip", "per_channel", "dict_size")


@dataclass(frozen=True)
class LayerRule:
    """Overrides for tensors whose name, or the name of a node reading them, matches `match`."""

    match: str
    overrides: dict[str, Any]

    def matches(self, tensor: str, nodes: list[str]) -> bool:
        return any(fnmatch.fnmatchcase(n, self.match) for n in [tensor, *nodes])


@dataclass(frozen=True)
class TensorSettings:
    """The settings that apply to one tensor after every rule."""

    bits: int
    sparsity: float
    policy: str
    skip: bool
    per_channel: bool
    dict_size: int | None


@dataclass(frozen=True)
class CompressOptions:
    """Everything `compress` takes. Field names are the TOML keys and the JSON option names."""

    bits: int = 8
    sparsity: float = 0.0
    sparsity_scope: str = "tensor"
    policy: str = "all"
    per_channel: bool = True
    scale_dtype: str = "bfloat16"
    group_size: int | None = None
    seed: int = 0
    effort: int = 1
    error_budget: float | None = None
    xor_variant: int = 1
    max_drop: float | None = None
    max_bits_per_weight: float | None = None
    dict_size: int | None = None
    dict_group: int | None = None
    ebpc_word_width: int = 8
    ebpc_block_size: int = 8
    insitu_tolerance: float | None = None
    insitu_config: str | None = None
    bias_correction: bool = True
    reconstruct: str = "auto"
    prune: str = "auto"
    prune_pattern: str | None = None
    act_order: bool = True
    damp: float = 0.01
    clip_search: bool = True
    reconstruct_order: str = "parallel"
    requantize: bool = False
    prune_structure: str | None = None
    crossbar: str = "crossbar-128"
    layers: tuple[LayerRule, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        check(self.bits, "bits", lambda v: type(v) is int and 2 <= v <= 8, "an integer in [2, 8]")
        check(self.sparsity, "sparsity", _is_fraction, "a number in [0, 1)")
        check(self.sparsity_scope, "sparsity_scope", lambda v: v in SCOPES, " or ".join(SCOPES))
        check(self.policy, "policy", _is_policy, "one of " + ", ".join(policies.POLICIES))
        check(
            self.scale_dtype, "scale_dtype", lambda v: v in SCALE_DTYPES, " or ".join(SCALE_DTYPES)
        )
        if self.group_size is not None:
            check(self.group_size, "group_size", _is_group_size, "an integer in [1, 2^31 - 1]")
            if not self.per_channel:
                raise ConfigError("group_size needs per-channel scales (not per_channel = false)")
        check(self.effort, "effort", lambda v: type(v) is int and 1 <= v <= 64, "in [1, 64]")
        check(self.xor_variant, "xor_variant", lambda v: type(v) is int and 1 <= v <= 3, "1-3")
        if self.error_budget is not None:
            check(self.error_budget, "error_budget", lambda v: _num(v) and v >= 0, "a number >= 0")
        if self.max_drop is not None:
            check(self.max_drop, "max_drop", lambda v: _num(v) and v >= 0, "a number >= 0")
        if self.max_bits_per_weight is not None:
            check(self.max_bits_per_weight, "max_bits_per_weight", _positive, "a number > 0")
        if self.dict_size is not None:
            check(self.dict_size, "dict_size", _is_dict_size, "an integer in [1, 256]")
        check(self.ebpc_word_width, "ebpc_word_width", lambda v: v in (8, 16), "8 or 16")
        check(self.ebpc_block_size, "ebpc_block_size", lambda v: v in (8, 16), "8 or 16")
        if self.insitu_tolerance is not None:
            check(self.insitu_tolerance, "insitu_tolerance", lambda v: _num(v) and v >= 0, ">= 0")
        if self.insitu_config is not None:
            check(self.insitu_config, "insitu_config", _is_insitu_config, "Bi,Bo,qb,qu,qv")
        check(self.bias_correction, "bias_correction", lambda v: type(v) is bool, "true or false")
        check(self.reconstruct, "reconstruct", lambda v: v in RECONSTRUCT, " or ".join(RECONSTRUCT))
        check(self.prune, "prune", lambda v: v in PRUNE, " or ".join(PRUNE))
        check(self.act_order, "act_order", lambda v: type(v) is bool, "true or false")
        check(self.clip_search, "clip_search", lambda v: type(v) is bool, "true or false")
        check(self.requantize, "requantize", lambda v: type(v) is bool, "true or false")
        check(self.damp, "damp", lambda v: _num(v) and 0 < v <= 10, "a number in (0, 10]")
        check(
            self.reconstruct_order, "reconstruct_order", lambda v: v in ORDERS, " or ".join(ORDERS)
        )
        if self.prune_structure is not None:
            check(
                self.prune_structure,
                "prune_structure",
                lambda v: v in STRUCTURES,
                "kernel-group or crossbar",
            )
            if self.prune_pattern is not None:
                raise ConfigError("prune_structure prunes units: no prune_pattern")
        check(self.crossbar, "crossbar", _is_crossbar, "one of " + ", ".join(_crossbars()))
        if self.prune_pattern is not None:
            check(self.prune_pattern, "prune_pattern", _is_pattern, "N:M with 1 <= N < M <= 64")
            if self.sparsity > 0:
                raise ConfigError("give sparsity or prune_pattern, not both")

    @property
    def pattern(self) -> tuple[int, int] | None:
        """--prune-pattern N:M as (N, M): at most N nonzeros in every M input features."""
        if self.prune_pattern is None:
            return None
        n, m = self.prune_pattern.split(":")
        return int(n), int(m)

    def resolved(self, has_calib: bool) -> CompressOptions:
        """The options with "auto" methods decided: with calibration data, GPTQ and OBS
        pruning (with --sparsity-scope global: per-layer sparsities, xorc/allocate.py);
        without, GPTQ on the H of synthetic inputs (xorc/selfcalib.py), else on the data-free
        prior H of convolution kernels (xorc/prior.py)."""
        recon = self.reconstruct
        if recon == "auto":
            recon = "gptq" if has_calib else "synthetic"
        prune = self.prune
        if prune == "auto":
            prune = "obs" if has_calib else "magnitude"
        if not has_calib and (recon == "gptq" or prune == "obs"):
            flag = "--reconstruct gptq" if recon == "gptq" else "--prune obs"
            raise UsageError(f"{flag} needs --calib DATA.npz")
        if (
            prune == "obs"
            and self.sparsity_scope == "global"
            and self.reconstruct_order != "parallel"
        ):
            raise UsageError(
                "--sparsity-scope global with --prune obs needs --reconstruct-order parallel"
            )
        if self.prune_structure and self.sparsity_scope == "global" and prune != "obs":
            raise UsageError("--prune-structure with --sparsity-scope global needs --calib")
        return replace(self, reconstruct=recon, prune=prune)

    def settings_for(self, tensor: str, nodes: list[str]) -> TensorSettings:
        values: dict[str, Any] = {
            "bits": self.bits,
            "sparsity": self.sparsity,
            "policy": self.policy,
            "skip": False,
            "per_channel": self.per_channel,
            "dict_size": self.dict_size,
        }
        for rule in self.layers:
            if rule.matches(tensor, nodes):
                values.update(rule.overrides)
        return TensorSettings(**values)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["layers"] = [{"match": r.match, **r.overrides} for r in self.layers]
        return out

    def digest(self) -> str:
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def check(value: Any, key: str, ok: Any, expected: str) -> None:
    """Raise ConfigError naming `key` when `ok(value)` is false."""
    try:
        good = bool(ok(value))
    except TypeError:
        good = False
    if not good:
        raise ConfigError(f"option {key!r} must be {expected}, got {value!r}")


def _num(v: Any) -> bool:
    return type(v) in (int, float)


def _positive(v: Any) -> bool:
    return _num(v) and v > 0


def _is_fraction(v: Any) -> bool:
    return _num(v) and 0 <= v < 1


def _crossbars() -> list[str]:
    from xorc.datapath.crossbar import PRESETS

    return list(PRESETS)


def _is_crossbar(v: Any) -> bool:
    return isinstance(v, str) and v in _crossbars()


def _is_policy(v: Any) -> bool:
    return isinstance(v, str) and v in policies.POLICIES


def _is_pattern(v: Any) -> bool:
    if not isinstance(v, str) or v.count(":") != 1:
        return False
    n, m = v.split(":")
    return n.isdigit() and m.isdigit() and 1 <= int(n) < int(m) <= 64


def insitu_config(text: str) -> tuple[int, int, int, int, int]:
    """(Bi, Bo, qb, qu, qv) of an `insitu_config` string "Bi,Bo,qb,qu,qv"."""
    bi, bo, qb, qu, qv = (int(x) for x in text.split(","))
    return bi, bo, qb, qu, qv


def _is_insitu_config(v: Any) -> bool:
    try:
        bi, bo, *qs = insitu_config(v)
    except ValueError:
        return False
    return 0 <= bi <= 64 and bo >= 1 and all(2 <= q <= 8 for q in qs)


def _is_group_size(v: Any) -> bool:
    return type(v) is int and 1 <= v <= 2**31 - 1


def _is_dict_size(v: Any) -> bool:
    return type(v) is int and 1 <= v <= 256


_LAYER_CHECKS = {
    "bits": (lambda v: type(v) is int and 2 <= v <= 8, "an integer in [2, 8]"),
    "sparsity": (_is_fraction, "a number in [0, 1)"),
    "policy": (_is_policy, "one of " + ", ".join(policies.POLICIES)),
    "skip": (lambda v: type(v) is bool, "true or false"),
    "per_channel": (lambda v: type(v) is bool, "true or false"),
    "dict_size": (_is_dict_size, "an integer in [1, 256]"),
}


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file into keyword arguments for CompressOptions (validated)."""
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    known = {f for f in CompressOptions.__dataclass_fields__ if f != "layers"}
    kwargs: dict[str, Any] = {}
    for key, value in doc.items():
        if key == "layer":
            kwargs["layers"] = tuple(
                _parse_rule(path, i, r) for i, r in enumerate(_rules(path, value))
            )
        elif key in known:
            kwargs[key] = value
        else:
            raise ConfigError(f"{path}: unknown key {key!r}")
    return kwargs


def _rules(path: str | Path, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise ConfigError(f"{path}: 'layer' must be an array of tables ([[layer]])")
    return value


def _parse_rule(path: str | Path, i: int, raw: dict[str, Any]) -> LayerRule:
    match = raw.get("match")
    if not isinstance(match, str) or not match:
        raise ConfigError(f"{path}: layer #{i + 1} needs a 'match' glob pattern")
    overrides = {}
    for key, value in raw.items():
        if key == "match":
            continue
        if key not in _LAYER_CHECKS:
            raise ConfigError(f"{path}: layer #{i + 1} ({match!r}): unknown key {key!r}")
        ok, expected = _LAYER_CHECKS[key]
        check(value, f"layer {match!r} {key}", ok, expected)
        overrides[key] = value
    return LayerRule(match, overrides)


def build_options(config_file: str | Path | None = None, **flags: Any) -> CompressOptions:
    """Defaults, then the file, then the flags that were given (None means not given)."""
    kwargs = load_config(config_file) if config_file else {}
    kwargs.update({k: v for k, v in flags.items() if v is not None})
    return CompressOptions(**kwargs)
