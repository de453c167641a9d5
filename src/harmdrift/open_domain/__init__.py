"""Open-domain queries: how each model answers free questions outside the benchmarks.

``queries`` loads, validates and samples the query set (seeded, stratified); ``classify`` sorts
the answers into categories with the judge, plus a keyword refusal check; ``rates`` gives the
rate per category with bootstrap intervals; ``rules`` holds the stage's rule functions.
"""
