"""The crossbar target: presets for in-memory (ReRAM-style) crossbar accelerators and the mapper
that places each layer's integer weights on R x C crossbars (docs/crossbar.md §2).

A layer's weight is unrolled to a matrix of (Ci/groups x kernel) rows (the inputs a crossbar's
word lines carry) by Co/groups columns (the bit lines), one matrix per group, and tiled into
R x C weight tiles. A weight of Q bits (a symmetric level, Q-1 magnitude bits) is bit sliced
over S = ceil((Q-1) / cell_bits) crossbars of `cell_bits` cells, each doubled for the sign
(differential pair) when `differential`; the shift-and-add unit merges the slices and applies
the pow2 scale with the same shifts. Rows of a column block that are zero in every column
(pruned kernel groups, docs/crossbar.md §3) are compacted away, so a column block needs
ceil(active rows / R) tiles. Inputs enter `dac_bits` at a time: ceil(input_bits / dac_bits)
steps, each step one ADC conversion per bit line per slice, per output position.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xorc.datapath.config import read_toml
from xorc.errors import ConfigError


@dataclass(frozen=True)
class CrossbarConfig:
    """A crossbar accelerator (docs/crossbar.md §2).

    Attributes:
        name: the preset (with "+overrides" when changed).
        rows: word lines per crossbar (R): weight-matrix rows per tile.
        cols: bit lines per crossbar (C): weight-matrix columns per tile.
        cell_bits: bits one cell stores (conductance levels 2^cell_bits).
        differential: a weight's sign by a pair of cells (two crossbars per slice).
        dac_bits: input bits applied per step.
        input_bits: activation bits (ceil(input_bits / dac_bits) steps per position).
        adc_bits: ADC resolution of a bit line's conversion.
    """

    name: str = "crossbar-128"
    rows: int = 128
    cols: int = 128
    cell_bits: int = 2
    differential: bool = True
    dac_bits: int = 1
    input_bits: int = 8
    adc_bits: int = 8

    def __post_init__(self) -> None:
        for key, (lo, hi) in _RANGES.items():
            value = getattr(self, key)
            if type(value) is not int or not lo <= value <= hi:
                raise ConfigError(
                    f"crossbar option {key!r} must be an integer in [{lo}, {hi}], got {value!r}"
                )
        if type(self.differential) is not bool:
            raise ConfigError("crossbar option 'differential' must be true or false")

    def slices(self, bits: int) -> int:
        """Crossbars (cell slices) one Q-bit level's magnitude takes."""
        return max(1, math.ceil((bits - 1) / self.cell_bits))

    @property
    def steps(self) -> int:
        """Input steps per output position."""
        return math.ceil(self.input_bits / self.dac_bits)

    @property
    def adc_bits_lossless(self) -> int:
        """ADC bits a bit line's sum needs to be exact: R cells of 2^cell_bits - 1 times an
        input step of 2^dac_bits - 1 (and a sign bit with differential pairs)."""
        peak = self.rows * ((1 << self.cell_bits) - 1) * ((1 << self.dac_bits) - 1)
        return math.ceil(math.log2(peak + 1)) + int(self.differential)

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "adc_bits_lossless": self.adc_bits_lossless}


_RANGES = {
    "rows": (1, 4096),
    "cols": (1, 4096),
    "cell_bits": (1, 8),
    "dac_bits": (1, 8),
    "input_bits": (1, 16),
    "adc_bits": (1, 16),
}

PRESETS: dict[str, CrossbarConfig] = {
    # ISAAC-like (Shafiee et al., ISCA 2016): 128 x 128, 2-bit cells, 1-bit DAC, 8-bit ADC.
    "crossbar-128": CrossbarConfig(),
    # Larger arrays, the same cells: fewer crossbars, more ADC bits needed per bit line.
    "crossbar-256": CrossbarConfig(name="crossbar-256", rows=256, cols=256),
    # Small single-level-cell arrays: 1-bit cells, 64 x 64, 6-bit ADC.
    "crossbar-64-slc": CrossbarConfig(
        name="crossbar-64-slc", rows=64, cols=64, cell_bits=1, adc_bits=6
    ),
}


def get_preset(name: str, overrides: dict[str, Any] | None = None) -> CrossbarConfig:
    """A crossbar preset, with fields replaced (ConfigError for unknown names, keys, values)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown crossbar preset {name!r} (known: {', '.join(PRESETS)})")
    base = PRESETS[name]
    if not overrides:
        return base
    known = {f.name for f in dataclasses.fields(CrossbarConfig)} - {"name"}
    for key in overrides:
        if key not in known:
            raise ConfigError(f"unknown crossbar option {key!r}")
    return dataclasses.replace(base, name=f"{name}+overrides", **overrides)


def load_config(toml_path: str | Path | None, preset: str | None) -> CrossbarConfig:
    """A crossbar preset (default crossbar-128; a file's `preset` key unless `preset` is given)
    with the overrides of a TOML file's other top-level keys."""
    overrides = {} if toml_path is None else read_toml(toml_path)
    raw = overrides.pop("preset", None)
    if raw is not None and not isinstance(raw, str):
        raise ConfigError(f"{toml_path}: 'preset' must be a string, got {raw!r}")
    try:
        return get_preset(preset or raw or "crossbar-128", overrides)
    except ConfigError as exc:
        raise ConfigError(f"{toml_path}: {exc}" if toml_path else str(exc)) from None


def unroll(weight: NDArray, axis: int, groups: int = 1) -> list[NDArray]:
    """The crossbar matrices of a weight: [rows = Ci/groups x kernel, cols = Co/groups] per
    group (output channels along `axis`, the other axes flattened in C order)."""
    moved = np.moveaxis(weight, axis, 0)
    rows = moved.reshape(moved.shape[0], -1)  # [Co, F]
    per = rows.shape[0] // groups
    return [rows[g * per : (g + 1) * per].T for g in range(groups)]


def tile_grid(n_rows: int, n_cols: int, cfg: CrossbarConfig) -> tuple[int, int]:
    """Row blocks and column blocks of an n_rows x n_cols matrix in R x C tiles."""
    return -(-n_rows // cfg.rows), -(-n_cols // cfg.cols)


@dataclass(frozen=True)
class LayerMap:
    """One layer on the crossbars (JSON field names are fixed)."""

    name: str
    op_type: str
    matrix: tuple[int, int]
    groups: int
    bits: int
    slices: int
    positions: int
    tiles_dense: int
    tiles_used: int
    crossbars_dense: int
    crossbars_used: int
    nonzero: int
    utilisation: float
    adc_dense: int
    adc_used: int

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["matrix"] = list(self.matrix)
        out["utilisation"] = round(self.utilisation, 6)
        return out


def map_layer(
    name: str,
    op_type: str,
    levels: NDArray[np.integer],
    axis: int,
    bits: int,
    groups: int,
    positions: int,
    cfg: CrossbarConfig,
) -> LayerMap:
    """Place one layer's levels: tiles dense and after compaction, ADC conversions, use."""
    per_slice = cfg.slices(bits) * (2 if cfg.differential else 1)
    dense = used = adc_dense = adc_used = 0
    mats = unroll(levels, axis, groups)
    for m in mats:
        nr, nc = m.shape
        rb, cb = tile_grid(nr, nc, cfg)
        dense += rb * cb
        adc_dense += rb * nc
        for j in range(cb):
            block = m[:, j * cfg.cols : (j + 1) * cfg.cols]
            active = int(np.count_nonzero(np.any(block != 0, axis=1)))
            tiles = -(-active // cfg.rows)
            used += tiles
            adc_used += tiles * block.shape[1]
    steps = cfg.steps * cfg.slices(bits) * positions
    nonzero = int(np.count_nonzero(levels))
    cells = used * cfg.rows * cfg.cols
    return LayerMap(
        name, op_type, mats[0].shape, groups, bits, cfg.slices(bits), positions,
        dense, used, dense * per_slice, used * per_slice, nonzero,
        nonzero / cells if cells else 0.0, adc_dense * steps, adc_used * steps,
    )  # fmt: skip


@dataclass(frozen=True)
class CrossbarResult:
    """Every mapped layer, the tensors left out (and why), and the configuration."""

    config: CrossbarConfig
    layers: list[LayerMap]
    skipped: list[tuple[str, str]]

    def total(self, key: str) -> int:
        return sum(getattr(layer, key) for layer in self.layers)

    def to_json(self) -> dict[str, Any]:
        keys = ("tiles_dense", "tiles_used", "crossbars_dense", "crossbars_used")
        totals: dict[str, Any] = {k: self.total(k) for k in (*keys, "adc_dense", "adc_used")}
        cells = self.total("tiles_used") * self.config.rows * self.config.cols
        totals["utilisation"] = round(self.total("nonzero") / cells, 6) if cells else 0.0
        totals["area_ratio"] = _ratio(self.total("crossbars_used"), self.total("crossbars_dense"))
        totals["adc_ratio"] = _ratio(self.total("adc_used"), self.total("adc_dense"))
        return {
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
            "skipped": [{"name": n, "reason": r} for n, r in self.skipped],
            "totals": totals,
        }


def _ratio(a: int, b: int) -> float:
    return round(a / b, 6) if b else 0.0


def render_crossbars(result: CrossbarResult) -> str:
    """The per-layer table and totals of `xorc simulate --preset crossbar-*`."""
    c = result.config
    lines = [
        f"crossbar {c.name}: {c.rows}x{c.cols}, {c.cell_bits}-bit cells"
        f"{', differential' if c.differential else ''}, {c.dac_bits}-bit DAC x {c.steps} steps, "
        f"{c.adc_bits}-bit ADC (lossless needs {c.adc_bits_lossless})",
        f"{'layer':<28} {'matrix':>11} {'Q':>2} {'S':>2} {'tiles':>11} {'crossbars':>11} "
        f"{'util':>6} {'ADC conv/inf':>15}",
    ]
    lines += [
        f"{m.name[:28]:<28} {f'{m.matrix[0]}x{m.matrix[1]}':>11} {m.bits:>2} {m.slices:>2} "
        f"{f'{m.tiles_used}/{m.tiles_dense}':>11} "
        f"{f'{m.crossbars_used}/{m.crossbars_dense}':>11} {100 * m.utilisation:5.1f}% "
        f"{m.adc_used:>15,}"
        for m in result.layers
    ]
    t = result.to_json()["totals"]
    lines.append(
        f"total: tiles {t['tiles_used']}/{t['tiles_dense']} dense, crossbars (area proxy) "
        f"{t['crossbars_used']}/{t['crossbars_dense']} ({100 * t['area_ratio']:.1f}%), "
        f"utilisation {100 * t['utilisation']:.1f}%, ADC conversions per inference (power proxy) "
        f"{t['adc_used']:,}/{t['adc_dense']:,} ({100 * t['adc_ratio']:.1f}%)"
    )
    lines += [f"not mapped: {n} ({r})" for n, r in result.skipped]
    return "\n".join(lines)


def map_container(
    records: list[tuple[str, int | None, int, NDArray[np.integer]]],
    layers: dict[str, tuple[str, int]],
    macs: dict[str, int],
    cfg: CrossbarConfig,
) -> CrossbarResult:
    """Map every (name, axis, bits, levels) whose layer (op type, groups) is known; output
    positions per inference are MACs / weights (1 for a matrix product at batch 1)."""
    mapped, skipped = [], []
    for name, axis, bits, levels in records:
        if name not in layers or axis is None or levels.ndim < 2:
            skipped.append((name, "not the weight of a Conv/Gemm/MatMul with a channel axis"))
            continue
        op, groups = layers[name]
        if op == "ConvTranspose" or levels.shape[axis] % max(groups, 1):
            skipped.append((name, f"{op}: not mapped"))
            continue
        positions = max(1, macs.get(name, levels.size) // max(levels.size, 1))
        mapped.append(map_layer(name, op, levels, axis, bits, max(groups, 1), positions, cfg))
    return CrossbarResult(cfg, mapped, skipped)
