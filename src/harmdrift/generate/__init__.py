"""Generation: one model answers one split in one framing, resumably, with its prompts recorded.

``answers`` builds the prompts, decodes them through the local back-end
(``backends.hf_backend``), parses each reply and writes the answer file in checkpointed
chunks; its ``ReplyReuse`` lets an identical later job read a whole job's replies instead of
decoding them again. ``rules`` is the ``generate_answers`` rule's function: it names the
weights by content for that reuse.
"""
