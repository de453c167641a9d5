"""Layer 1: local language models: finding them, generating with them, scoring options.

``refs`` resolves embedded, hub and local model references with provenance; ``convert`` turns a
wheel's GGUF model into safetensors; ``engine`` (with ``batch``, ``kv`` and ``sampler``) decodes
prompts with continuous batching and per-item seeded sampling; ``forced`` and ``groups`` score
options after a reply, running shared openings once; ``structured`` gets validated verdicts from
any back-end; ``tiny`` writes a tiny random model for tests; ``rules`` holds the conversion rule.
"""
