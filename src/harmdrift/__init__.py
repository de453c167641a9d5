"""harmdrift: the DART pipeline (distill, audit, repair) as an importable package.

Every rule's script is a thin adaptor over a function in this package, so the same
code runs from Snakemake, from a test or from a notebook.
"""

__version__ = "0.1.0"
