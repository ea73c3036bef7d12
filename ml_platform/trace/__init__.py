"""Trace a live signal back to everything that made it, as recorded when it was written.

* :mod:`~ml_platform.trace.record` (pure): :class:`TraceRecord` and its parts, frozen, with ``to_dict``;
* :mod:`~ml_platform.trace.resolve` (pure): the signal's partition version, row, ledger entry in force and
  recorded lineage (by data hash, through :mod:`ml_platform.io.recorded_lineage`);
* :mod:`~ml_platform.trace.recompute` (pure): the signal recomputed in this process, compared bit for bit;
* :mod:`~ml_platform.trace.report` (pure): markdown and HTML with a lineage picture;
* :mod:`~ml_platform.trace.locate`: the live-signal version of a day, of a store key or of a model's rows;
* :mod:`~ml_platform.trace.service`: :func:`trace_signal`, opening the store and registry from the settings;
* :mod:`~ml_platform.cli.trace`: ``ml-platform trace``.

Example:
    >>> record = trace_signal("team_b_ridge", "2021-06-02", "ALPH", recompute=True)  # doctest: +SKIP
    >>> record.champion.actor, record.model.version, record.recompute.equal  # doctest: +SKIP
"""
