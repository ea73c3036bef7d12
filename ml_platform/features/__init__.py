"""Feature graph: declare pure feature functions with :func:`feature`, hash them as a Merkle DAG with
:class:`FeatureGraph`, and turn them into Dagster assets with ``build_feature_assets``
(in :mod:`ml_platform.features.assets`, which imports Dagster)."""

from ml_platform.features.graph import FeatureGraph, HashedFeature
from ml_platform.features.spec import FeatureSpec, Upstream, feature

__all__ = ["FeatureGraph", "FeatureSpec", "HashedFeature", "Upstream", "feature"]
