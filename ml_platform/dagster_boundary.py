"""The boundary between Dagster and the platform: resource settings coming in, platform errors going out.

How it works, and why: docs/architecture.md, "ml_platform/dagster_boundary.py".
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

import dagster as dg

from ml_platform import metadata
from ml_platform.environment import EnvironmentPolicy
from ml_platform.errors import ConfigurationError, MLPlatformError
from ml_platform.redact import redacted_url

__all__ = ["failure_from", "link_metadata", "platform_error_of", "platform_failures", "resource_settings"]

P = ParamSpec("P")
R = TypeVar("R")

#: the literal settings every resource checks before pydantic does, and how
_SETTING_CHECKS: dict[str, Callable[[str], Any]] = {
    "environment_policy": EnvironmentPolicy.parse,  # also accepts any case: "STRICT", "Warn"
}


def resource_settings(owner: type, data: Mapping[str, Any], **checks: Callable[[str], Any]) -> dict[str, Any]:
    """``data`` with its literal ``environment_policy`` parsed to :class:`EnvironmentPolicy` (any case), and
    each field named in ``checks`` passed through its check, for the fields ``owner`` (a resource class) declares.

    Raises:
        ConfigurationError: one of those fields is a string that is not one of the allowed values; the
            message names ``Owner.field`` and the allowed values. (Other values, such as a wrong type, are
            left to pydantic's validation of the typed field.)
    """
    checked = dict(data)
    fields = getattr(owner, "model_fields", {})
    for name, check in {**_SETTING_CHECKS, **checks}.items():
        value = checked.get(name)
        if name in fields and isinstance(value, str):
            try:
                checked[name] = check(value)
            except ConfigurationError as exc:
                raise ConfigurationError(f"{owner.__name__}.{name}: {exc.args[0]}") from None
    return checked


def _context_metadata(context: dg.AssetExecutionContext | None) -> dict[str, str]:
    if context is None:
        return {}
    try:
        key = context.asset_key.to_user_string()
    except dg.DagsterInvariantViolationError:  # a multi-asset: every key the step materializes
        key = ", ".join(sorted(k.to_user_string() for k in context.selected_asset_keys))
    facts = {metadata.ASSET_KEY: key}
    if context.has_partition_key_range:
        keys = context.partition_key_range
        facts[metadata.PARTITION_RANGE] = keys.start if keys.start == keys.end else f"{keys.start}..{keys.end}"
    return facts


def failure_from(error: MLPlatformError, context: dg.AssetExecutionContext | None = None) -> dg.Failure:
    """The ``dagster.Failure`` that reports ``error`` (raise it ``from error``), any credential in its message masked."""
    return dg.Failure(
        description=redacted_url(str(error)),
        metadata={metadata.ERROR_CODE: error.code, metadata.ERROR_TYPE: type(error).__name__, **_context_metadata(context)},
        allow_retries=False,
    )


def platform_failures(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorate an asset body (under ``@dg.asset``): platform errors raised in it leave as ``dagster.Failure``.

    Dagster reads the body's signature (context, inputs, config class) through ``functools.wraps``.
    The asset's context is the first positional argument or the ``context`` keyword.
    """

    @functools.wraps(fn)
    def body(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except MLPlatformError as error:
            candidates = (*args[:1], kwargs.get("context"))
            context = next((c for c in candidates if isinstance(c, dg.AssetExecutionContext)), None)
            raise failure_from(error, context) from error

    return body


def platform_error_of(exc: BaseException) -> MLPlatformError | None:
    """The platform error a ``dagster.Failure`` from :func:`platform_failures` reports, else None."""
    cause = exc.__cause__
    return cause if isinstance(exc, dg.Failure) and isinstance(cause, MLPlatformError) else None


def link_metadata(link: metadata.Link) -> dg.MetadataValue:
    """The Dagster metadata value of ``link``: a path, a URL, or text (see :mod:`ml_platform.metadata`)."""
    if link.kind == "url":
        return dg.MetadataValue.url(link.target)
    if link.kind == "path":
        return dg.MetadataValue.path(link.target)
    return dg.MetadataValue.text(link.target)
