"""Audit your own fine-tune: models the pipeline did not train, against their base.

``spec`` reads the ``finetunes`` and ``prompt_sets`` config sections and checks them; ``answers``
writes a prompt set as the jobs read it, answers through an API model, and exports an API
fine-tune's repair set as chat JSONL; ``summary`` adds to Stage II's summary what a prompt set
measures beyond drift (accuracy, refusal and HateCheck rates) and the worst pairs side by side.
The pairing, screen, judge and Stage III repair are the built-in audit's own.
"""
