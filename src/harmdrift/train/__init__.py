"""Training a LoRA / QLoRA adapter on the student, for Stage I, repair rounds and the joint ablation.

``config`` holds the settings; ``examples`` reads and tokenises the chat examples (weighted
collator); ``loss`` is the per-example weighted loss over label positions; ``model`` loads the
student and attaches or continues its adapter; ``run`` drives the Trainer with resumable
checkpoints and provenance; ``rules`` is the ``train_adapter`` rule's function.
"""
