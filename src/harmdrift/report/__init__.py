"""The report: the run's tables and figures, from the files the stages wrote (imports only ``core``).

``readers`` reads those files with errors that name them; ``main_table`` builds the main results
table (rendered by ``markdown``) and ``paper`` sets the paper's numbers beside ours; ``figures``,
``audit_figures`` and ``control_figure`` draw the figures with ``plotting``'s shared helpers;
``rules`` holds the ``main_results`` and ``figures`` rules' functions.
"""
