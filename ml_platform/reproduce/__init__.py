"""Reproduce a registered model version bit-exactly from its record, and certify it.

* :mod:`~ml_platform.io.recorded_lineage` (pure): every stored version beneath the model's training set;
* :mod:`~ml_platform.reproduce.sources` (pure): source data as delivered, seeded by data hash;
* :mod:`~ml_platform.reproduce.compare` (pure): recorded against reproduced, and the first difference;
* :mod:`~ml_platform.reproduce.plan`: what the record asks to rebuild, in passes, checked before anything starts;
* :mod:`~ml_platform.reproduce.old_commit`: the old commit checked out, its environment rebuilt, its Dagster;
* :mod:`~ml_platform.reproduce.rebuild`: each pass seeded, backfilled, retrained, scored and compared;
* :mod:`~ml_platform.reproduce.certificate`: the certificate, stored beside the version in MLflow.
"""
