"""Layer 0: what every stage shares, and nothing that knows a stage.

``io`` (atomic writes, JSON/JSONL with line-numbered errors, hashing), ``store`` (the SQLite
key-value store behind every cache), ``vocab`` (the pipeline's fixed names, written once),
``decoding`` (``GenParams``, per-item seeds), ``runtime`` (device, dtype, threads, 4-bit),
``parsing`` (conclusions, options, refusals, analysis text), ``prompts`` (templates and chat
messages), ``stats`` (bootstrap, intervals, drift reduction, number formats), ``logs``.
"""
