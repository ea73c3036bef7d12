"""The Definitions loaded by workspace.yaml (``quant_alpha.definitions:defs``).

The deployment comes from ``ML_PLATFORM_*`` variables (:meth:`ml_platform.Settings.from_env`); the
market source from ``QUANT_ALPHA_MARKET_SOURCE`` (``sample``, the default, or ``synthetic``).
"""

import os

from ml_platform import Settings
from quant_alpha.features import build_graph
from quant_alpha.project import project_definitions

SETTINGS = Settings.from_env(os.environ)
GRAPH = build_graph(os.environ.get("QUANT_ALPHA_MARKET_SOURCE", "sample"))
defs = project_definitions(SETTINGS, GRAPH)
