"""Stage II, the audit: where a tuned model's explanations drifted toward harm, and how reliably.

``pairs`` puts M0's and a tuned model's answers side by side, scored and screened for toxicity;
``judge`` asks the LLM judge about each pair in both orders and combines the verdicts;
``check_pairs``, ``check_set`` and ``meta_eval`` build labelled pairs, judge them and score the
judge (accuracy, F1, intervals, the floor); ``table`` writes the audit table and its summary;
``rules`` holds one function per Stage II rule.
"""
