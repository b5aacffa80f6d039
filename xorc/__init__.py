"""xorc: compress ONNX model weights into small, checksummed blobs for edge accelerators.

Public API (the CLI is a thin layer over these):

    compress(model, out, options)            -> CompressReport
    inspect(blob)                            -> InspectReport
    decompress(blob, out)                    -> path of the rebuilt ONNX model
    verify(blob, model=None, data=None, ...) -> VerifyReport
"""

__version__ = "0.1.0"
