"""The launcher's error: a service that would not start or stop, named with what to do."""

from __future__ import annotations

from ml_platform.errors import MLPlatformError

__all__ = ["StackError"]


class StackError(MLPlatformError):
    """The local production stack could not be started, stopped or reached."""

    code = "PROD_LOCAL_STACK_ERROR"
