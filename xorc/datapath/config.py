"""Datapath parameters: frozen `DatapathConfig`, presets, TOML overrides (docs/datapath.md §2).

The defaults are Gemmini's default configuration (`ucb-bar/gemmini` `Configs.scala`, see
shared/notes/xor.md §10.4) plus the decompressor's own knobs. A TOML file holds top-level keys
named after the fields, e.g.::

    preset = "gemmini-default"   # optional: the preset the overrides start from
    patch_per_cycle = 2
    patch_fifo_depth = 16

An unknown key or a value of the wrong type or range is a `xorc.errors.ConfigError` naming it.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xorc.errors import ConfigError


@dataclass(frozen=True)
class DatapathConfig:
    """Everything the simulator's cycle model depends on. Widths in bits unless named `_bytes`.

    Attributes:
        name: the preset this configuration came from (with "+overrides" when a file changed it).
        dim: systolic array side (DIM x DIM PEs); one scratchpad row holds DIM inputs.
        input_bits: bits of an input/weight element (int8 in Gemmini).
        acc_bits: bits of an accumulator element.
        sp_kib: scratchpad capacity in KiB.
        sp_banks: scratchpad banks (single-ported, one row per cycle each).
        acc_kib: accumulator capacity in KiB.
        acc_banks: accumulator banks.
        dma_bus_bits: DMA data bus width; one bus word ("beat") per cycle.
        dma_max_bytes: bytes per DMA request (one cache block).
        max_in_flight: DMA requests in flight at once.
        dram_latency: cycles from a request to its first beat (0: an ideal memory that returns a
            beat every cycle). With latency L the bus delivers at most
            max_in_flight * dma_max_bytes / L bytes per cycle.
        sp_write_rows: decoded rows written to the scratchpad per cycle.
        xor_arrays: XOR network instances; each decodes one N_out-bit slice of one plane per cycle.
        xor_max_n_in: seed inputs of the XOR network (columns of M built in hardware).
        patch_per_cycle: P, bit flips the patch unit applies per cycle.
        patch_fifo_depth: D, entries of the patch FIFO (0: a slice's flips must all be applied
            within the slice's own cycles).
        rice_codes_per_cycle: Rice codes (mask gaps, patch gaps) a Rice decoder reads per cycle.
        huffman_codes_per_cycle: Huffman codes the dictionary's index decoder reads per cycle.
        ebpc_words_per_cycle: words the EBPC decompressor emits per cycle (1 in the RTL).
    """

    name: str = "gemmini-default"
    dim: int = 16
    input_bits: int = 8
    acc_bits: int = 32
    sp_kib: int = 256
    sp_banks: int = 4
    acc_kib: int = 64
    acc_banks: int = 2
    dma_bus_bits: int = 128
    dma_max_bytes: int = 64
    max_in_flight: int = 16
    dram_latency: int = 0
    sp_write_rows: int = 1
    xor_arrays: int = 1
    xor_max_n_in: int = 64
    patch_per_cycle: int = 1
    patch_fifo_depth: int = 8
    rice_codes_per_cycle: int = 1
    huffman_codes_per_cycle: int = 1
    ebpc_words_per_cycle: int = 1

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name == "name":
                if not isinstance(self.name, str) or not self.name:
                    raise ConfigError(
                        f"datapath option 'name' must be a non-empty string, got {self.name!r}"
                    )
                continue
            value = getattr(self, f.name)
            lo, hi = _RANGES.get(f.name, (1, 1 << 20))
            if type(value) is not int or not lo <= value <= hi:
                raise ConfigError(
                    f"datapath option {f.name!r} must be an integer in [{lo}, {hi}], got {value!r}"
                )
        if self.dma_bus_bits % 8:
            raise ConfigError(
                f"datapath option 'dma_bus_bits' must be a multiple of 8, got {self.dma_bus_bits}"
            )
        if self.dma_max_bytes % self.bus_bytes:
            raise ConfigError(
                f"datapath option 'dma_max_bytes' ({self.dma_max_bytes}) must be a multiple of "
                f"the bus width in bytes ({self.bus_bytes})"
            )
        if (self.sp_kib * 8192) % (self.sp_banks * self.sp_row_bits):
            raise ConfigError("datapath option 'sp_kib' must split into whole rows per bank")

    # --- derived widths -------------------------------------------------------------------------

    @property
    def bus_bytes(self) -> int:
        """Bytes per DMA beat."""
        return self.dma_bus_bits // 8

    @property
    def sp_row_bits(self) -> int:
        """Bits of one scratchpad row: DIM elements."""
        return self.dim * self.input_bits

    @property
    def sp_rows_per_bank(self) -> int:
        return self.sp_kib * 8192 // (self.sp_banks * self.sp_row_bits)

    @property
    def acc_row_bits(self) -> int:
        return self.dim * self.acc_bits

    @property
    def dram_bytes_per_cycle(self) -> float:
        """Sustained DRAM bandwidth: the bus width, or the in-flight limit over the latency."""
        if self.dram_latency == 0:
            return float(self.bus_bytes)
        return min(
            float(self.bus_bytes), self.max_in_flight * self.dma_max_bytes / self.dram_latency
        )

    @property
    def macs_per_cycle(self) -> int:
        """MACs the DIM x DIM array performs per cycle."""
        return self.dim * self.dim

    def to_json(self) -> dict[str, Any]:
        """The fields plus the derived widths, as plain JSON values (stable keys)."""
        out: dict[str, Any] = dataclasses.asdict(self)
        out["derived"] = {
            "bus_bytes": self.bus_bytes,
            "sp_row_bits": self.sp_row_bits,
            "sp_rows_per_bank": self.sp_rows_per_bank,
            "acc_row_bits": self.acc_row_bits,
            "dram_bytes_per_cycle": self.dram_bytes_per_cycle,
            "macs_per_cycle": self.macs_per_cycle,
        }
        return out


_RANGES: dict[str, tuple[int, int]] = {
    "dim": (1, 256),
    "input_bits": (8, 8),
    "acc_bits": (8, 64),
    "dma_bus_bits": (8, 4096),
    "dma_max_bytes": (1, 1 << 16),
    "dram_latency": (0, 1 << 20),
    "xor_max_n_in": (1, 64),
    "patch_fifo_depth": (0, 1 << 16),
}

PRESETS: dict[str, DatapathConfig] = {
    "gemmini-default": DatapathConfig(),
    # Two XOR arrays, a patch unit twice as wide and deeper, faster Rice/Huffman front ends: the
    # decompressor keeps one scratchpad row per cycle on denser patch and mask streams.
    "gemmini-2x-decoder": DatapathConfig(
        name="gemmini-2x-decoder",
        xor_arrays=2,
        patch_per_cycle=2,
        patch_fifo_depth=16,
        rice_codes_per_cycle=2,
        huffman_codes_per_cycle=2,
    ),
    # Front ends as wide as the scratchpad row (16 Rice/Huffman codes or EBPC words per cycle):
    # the decoders never limit the row rate, so only DRAM, writes and the XOR/patch path remain.
    "gemmini-row-rate": DatapathConfig(
        name="gemmini-row-rate",
        patch_per_cycle=2,
        patch_fifo_depth=16,
        rice_codes_per_cycle=16,
        huffman_codes_per_cycle=16,
        ebpc_words_per_cycle=16,
    ),
    # Gemmini's default array behind a DRAM with 128 cycles of latency: 16 requests of 64 B in
    # flight sustain 8 B per cycle, half the bus.
    "gemmini-dram-latency": DatapathConfig(name="gemmini-dram-latency", dram_latency=128),
}

_FIELDS = {f.name for f in dataclasses.fields(DatapathConfig)} - {"name"}


def get_preset(name: str) -> DatapathConfig:
    """The named preset, or ConfigError listing the known ones."""
    if name not in PRESETS:
        raise ConfigError(f"unknown datapath preset {name!r} (known: {', '.join(sorted(PRESETS))})")
    return PRESETS[name]


def with_overrides(
    base: DatapathConfig, overrides: dict[str, Any], source: str = ""
) -> DatapathConfig:
    """`base` with some fields replaced; unknown keys and bad values are ConfigError."""
    where = f"{source}: " if source else ""
    for key in overrides:
        if key not in _FIELDS:
            raise ConfigError(f"{where}unknown datapath option {key!r}")
    if not overrides:
        return base
    try:
        return dataclasses.replace(base, name=f"{base.name}+overrides", **overrides)
    except ConfigError as exc:
        raise ConfigError(f"{where}{exc}") from None


def read_toml(toml_path: str | Path) -> dict[str, Any]:
    """A TOML file's top-level table (ConfigError naming the file when it cannot be read)."""
    try:
        return dict(tomllib.loads(Path(toml_path).read_text(encoding="utf-8")))
    except OSError as exc:
        raise ConfigError(f"{toml_path}: cannot read ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{toml_path}: not valid TOML ({exc})") from None


def load_config(toml_path: str | Path | None = None, preset: str | None = None) -> DatapathConfig:
    """A preset (default `gemmini-default`) with the overrides of a TOML file applied.

    The file may name its own starting preset with a top-level `preset` key; an explicit
    `preset` argument wins over it.

    Raises:
        ConfigError: unreadable file, invalid TOML, unknown preset or key, bad value.
    """
    overrides: dict[str, Any] = {}
    file_preset: str | None = None
    source = ""
    if toml_path is not None:
        source = str(toml_path)
        overrides = read_toml(toml_path)
        raw = overrides.pop("preset", None)
        if raw is not None and not isinstance(raw, str):
            raise ConfigError(f"{toml_path}: 'preset' must be a string, got {raw!r}")
        file_preset = raw
    base = get_preset(preset or file_preset or "gemmini-default")
    return with_overrides(base, overrides, source)
