"""Stage 0, data: the benchmark files and the train/val/test splits every later stage reads.

``load`` reads and validates one JSONL file per benchmark; ``splits`` makes DART's recorded
split or a seeded stratified subsample of it; ``rules`` is the ``write_splits`` rule's function.
"""
