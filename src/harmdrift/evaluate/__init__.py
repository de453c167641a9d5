"""Evaluation: scoring a model's answer file into metric tables with scenario-bootstrap intervals.

``metrics`` computes DART's binary metrics under its strict parse rule and our tolerant one;
``mc_metrics`` the original benchmark's 3-way metrics (DiffAware, CtxtAware); ``score`` reads the
answers and writes CSV and Markdown (rendered by ``markdown``); ``validation`` holds the checks on
columns, ids and values; ``rules`` holds the ``score_binary`` and ``score_mc`` rules' functions.
"""
