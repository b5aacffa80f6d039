"""Every failure xorc reports, as a named class with a documented exit code.

The exit codes are a contract with scripts and CI (README.md, "Exit codes"):

    0 ok · 1 internal error · 2 usage · 3 verify gate (or compress --strict) failed
    4 invalid or corrupt blob · 5 invalid or unsupported model

Messages are one line and name the file, tensor, section or field at fault.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of the `xorc` command."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    GATE_FAILED = 3
    BAD_BLOB = 4
    BAD_MODEL = 5


class XorcError(Exception):
    """Base class of every error xorc raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL


# --- usage -------------------------------------------------------------------------------------


class UsageError(XorcError):
    """An option, option value or configuration file is wrong."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """The TOML configuration file is unreadable or holds an unknown key or bad value."""


# --- verify ------------------------------------------------------------------------------------


class VerifyError(XorcError):
    """A verification gate failed."""

    exit_code = ExitCode.GATE_FAILED


class BitMismatch(VerifyError):
    """A decoder produced values other than the ones the encoder intended."""


class AccuracyBelowThreshold(VerifyError):
    """The compressed model lost more accuracy than allowed."""


class FidelityBelowThreshold(VerifyError):
    """compress --strict: the compressed model's outputs are further from the original's than
    --min-fidelity allows."""


# --- blobs -------------------------------------------------------------------------------------


class BlobError(XorcError):
    """The blob is not a valid xorc container (docs/format.md)."""

    exit_code = ExitCode.BAD_BLOB


class BadMagic(BlobError):
    """The file does not start with the xorc magic bytes."""


class UnsupportedVersion(BlobError):
    """The container's major version is not one this reader knows."""


class Truncated(BlobError):
    """The file is shorter than its header or section table says."""


class TrailingBytes(BlobError):
    """The file is longer than its header says."""


class HeaderChecksumMismatch(BlobError):
    """The CRC32 of the fixed header or of the section table does not match."""


class BadSectionTable(BlobError):
    """A section entry is out of range, misaligned, overlapping, duplicated or leaves a hole."""


class SectionChecksumMismatch(BlobError):
    """A section's bytes do not match the CRC32 in the section table."""


class FileDigestMismatch(BlobError):
    """The whole-file SHA-256 in the header does not match the file's content."""


class BadRecord(BlobError):
    """A metadata or tensor record field is missing, of the wrong type or out of range."""


class CorruptStream(BlobError):
    """A codec stream cannot be decoded (too short, too long, or inconsistent with its record)."""


# --- models ------------------------------------------------------------------------------------


class ModelError(XorcError):
    """The ONNX model cannot be read or is not supported."""

    exit_code = ExitCode.BAD_MODEL


class NotOnnx(ModelError):
    """The file is not a parseable ONNX model."""


class ExternalDataError(ModelError):
    """An external-data reference is missing, unsafe (absolute, `..`) or out of range."""


class UnsupportedModel(ModelError):
    """The model uses a construct xorc cannot compress."""


class ProtobufLimit(ModelError):
    """A model (or the stored graph) would be over protobuf's 2 GB limit as one message."""


class OutOfSpace(UsageError):
    """The output's file system is full; nothing partial is left behind."""


class WorkerDied(XorcError):
    """A worker process of `--jobs` / `--executor` ended without a result (killed, out of
    memory); exit code 1, nothing written."""


class DataError(XorcError):
    """The data file (.npz) for accuracy checks or calibration does not fit the model."""

    exit_code = ExitCode.USAGE
