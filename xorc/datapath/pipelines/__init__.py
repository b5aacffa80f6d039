"""The decompressor configured for each codec: which units run, fed by which streams
(docs/datapath.md §3). One module per codec, named by the codec's `CodecSpec`
(`xorc/codecs/<name>/spec.py`): `run` (the `DatapathRun` hook) returns the levels in the
record's shape and, apart from them, the `Timing`; `area` (the `AreaHook`) counts the gates of
the units the codec adds. The record's params are checked by the codec's `schema.parse`, shared
with the reference decoder; everything else is this model's own.
"""
