"""Experiments: many runs, compared and reported.

Owns ``compare`` (source-only and DANN over seeds, and their table), the label-free
criteria that score a run without target labels (``criteria``, reverse validation
among them), ``train --select`` (``selection``: candidates trained, the top-scored
kept; ``compare --select`` adds one per seed), ``dann-serve adapt`` (``adaptation``: a
finished run adapted to a new folder, the parent kept as a candidate), and
``dann-serve report``: the runs
found on disk (``collect``), the figures (``curves`` over seeds, ``embedding``, drawn
by ``results_page``) and the Markdown of ``docs/RESULTS.md`` (``markdown``; the
candidates of each selection and the grading of the criteria in ``selection_page``).

May import: everything before it in the data flow (data, model, training) and the
top-level ``config``, ``files`` and ``runtime``; nothing of export or serving.
"""
