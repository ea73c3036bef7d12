"""The Definitions object loaded by workspace.yaml (``ml_platform.definitions:defs``).

Environment variables (``ML_PLATFORM_*``, see :class:`~ml_platform.settings.Settings`) are read here
and by the ``ml-platform`` command, both through :meth:`Settings.from_env`; nothing else reads them.
"""

import os

from ml_platform.deployment import build_definitions
from ml_platform.features.nodes import build_graph
from ml_platform.settings import Settings

SETTINGS = Settings.from_env(os.environ)
GRAPH = build_graph(SETTINGS.market_source)
defs = build_definitions(SETTINGS, GRAPH)
