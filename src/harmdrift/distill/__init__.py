"""Stage I, distillation: teacher rationales for the training split, checked, fixed or dropped.

``teacher`` is the ask-check-fix loop Stage III reuses; ``checks`` judges one rationale and builds
the canonical training target from it; ``rationales`` runs the loop over the split and writes
kept and dropped items with their reasons; ``rules`` is the ``write_rationales`` rule's function.
"""
