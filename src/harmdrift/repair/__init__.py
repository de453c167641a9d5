"""Stage III, repair: safer rationales for the confirmed drift cases, and the set to retrain on.

``cases`` reads the drift cases and scores texts as the audit's screen does; ``rationales`` asks
the teacher (Stage I's loop) for safer rationales and re-scores them against M0's; ``train_set``
builds the severity-weighted repair set with a Stage I replay share; ``config`` holds the
settings and severity weights; ``joint`` the joint-training ablation's toxicity-falling loss
weights; ``rules`` holds one function per Stage III rule.
"""
