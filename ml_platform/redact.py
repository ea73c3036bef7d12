"""Secrets kept out of what the platform shows or writes: credentials in URLs and settings masked. Pure.

How it works, and why: docs/architecture.md, "ml_platform/redact.py".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MASK", "has_secret", "redacted_url", "redacted_values", "secret_name", "secret_values", "shareable_cause"]

MASK = "***"

#: Words that make a name (a query parameter, a dictionary key, an environment variable) name a secret.
_SECRET_WORDS = (r"passw(?:or)?d|pwd|secret|token|credential|signature|private[-_]?key|api[-_]?key|"
                 r"access[-_]?key|routing[-_]?key|session[-_]?key|auth|webhook")
_SECRET_WORD_NAME = re.compile(rf"(?i)(?:{_SECRET_WORDS})|^(?:sig|key|pass)$")
_SECRET_NAME = re.compile(rf"(?i)(?:{_SECRET_WORDS})|^(?:sig|key|pass|dsn)$|(?:^|_)(?:url|uri|dsn)$")

#: ``scheme://user:password@``: the password is everything up to the ``@`` that ends the userinfo (a raw
#: ``@`` inside it, which SQLAlchemy accepts, is taken in when another ``@`` follows before the path).
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*:)(?P<secret>[^\s@]*(?:@[^\s@/?#]*)*)(?=@)")
#: ``name=value`` in a query string or a libpq DSN, ``name`` a secret's name (``password``, ``X-Amz-Signature``).
_ASSIGNED = re.compile(rf"(?i)(?P<head>(?<![A-Za-z0-9_.-])(?:[A-Za-z0-9_.-]*(?:{_SECRET_WORDS})[A-Za-z0-9_.-]*|sig)"
                       r"\s?=\s?)(?P<secret>[^\s&#]+)")
#: ``"name": "value"`` or ``'name': 'value'`` (JSON, a dict's repr), ``name`` a secret's name.
_QUOTED = re.compile(rf"(?i)(?P<head>(?P<q>[\"'])[A-Za-z0-9_.-]*(?:{_SECRET_WORDS})[A-Za-z0-9_.-]*(?P=q)\s*:\s*"
                     r"(?P<v>[\"']))(?P<secret>(?:\\.|(?!(?P=v)).)+)")
#: An HTTP authorization header as a log line shows it (``Authorization: Bearer ...``).
_HEADER = re.compile(r"(?i)(?P<head>\b(?:proxy-)?authorization\s*:\s*(?:(?:basic|bearer|token)\s+)?)(?P<secret>[^\s'\"]+)")
#: Webhook URLs whose path is the credential (Slack's incoming webhooks and workflow triggers).
_WEBHOOK_PATH = re.compile(r"(?i)(?P<head>\bhooks\.slack(?:-gov)?\.com/(?:services|workflows|triggers)/)"
                           r"(?P<secret>[^\s'\"?#]+)")


def redacted_url(text: str) -> str:
    """``text`` (a URL, or a message holding URLs) with every credential replaced by ``***``.

    Masked: a URL's userinfo password (``postgresql://alice:***@db/registry``), the value of every query or
    DSN parameter, and every JSON or ``repr`` entry, whose name names a secret (``password=***``,
    ``X-Amz-Signature=***``, ``'routing_key': '***'``), and the path of a Slack webhook URL. Everything else
    is kept, so the text still says which server, database or bucket it is about.
    """
    for pattern in (_USERINFO, _QUOTED, _ASSIGNED, _HEADER, _WEBHOOK_PATH):
        text = pattern.sub(_mask, text)
    return text


def _mask(match: re.Match[str]) -> str:
    return match.group("head") + MASK


def has_secret(text: str) -> bool:
    """Whether :func:`redacted_url` would mask anything in ``text``: a credential is written into it."""
    return redacted_url(text) != text


def secret_name(name: str) -> bool:
    """Whether ``name`` (an environment variable, a setting, a parameter) names a secret or a URL that may hold one.

    ``ML_PLATFORM_PAGERDUTY_ROUTING_KEY``, ``AWS_SECRET_ACCESS_KEY``, ``PGPASSWORD``,
    ``ML_PLATFORM_LEDGER_URL`` do; ``OMP_NUM_THREADS`` and ``TZ`` do not.
    """
    return bool(_SECRET_NAME.search(name))


def secret_values(env: Mapping[str, str]) -> tuple[str, ...]:
    """The secrets an environment holds: the value of each variable named as a secret (a password, key, token,
    webhook), and each URL-named one whose value holds a credential; values shorter than 8 characters left out
    (too short to look for in other text without false finds). Sorted, no duplicates."""
    found = set()
    for name, value in env.items():
        if len(value) < 8:
            continue
        if _SECRET_WORD_NAME.search(name) or (secret_name(name) and has_secret(value)):
            found.add(value)
    return tuple(sorted(found))


def redacted_values(value: Any) -> Any:
    """A JSON-like value (texts, numbers, lists, dicts) with :func:`redacted_url` applied to every text in it."""
    if isinstance(value, str):
        return redacted_url(value)
    if isinstance(value, Mapping):
        return {key: redacted_values(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redacted_values(item) for item in value]
    return value


def shareable_cause(exc: BaseException) -> BaseException | None:
    """``exc``, to chain under a platform error (``raise ... from shareable_cause(exc)``), or ``None`` when its
    message or that of any exception chained under it holds a credential (:func:`has_secret`).

    A chained cause is written out with the error wherever it goes (Dagster's event log, a log file), so a
    cause quoting a URL with its password must not travel; the platform error's own message, redacted with
    :func:`redacted_url`, then says what happened.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if has_secret(str(current)) or any(has_secret(str(arg)) for arg in current.args if isinstance(arg, str)):
            return None
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return exc
