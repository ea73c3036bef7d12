"""Finding secrets where they must not be: in an exception's chain, in bytes a process wrote.

:func:`chain_text` is what a log or Dagster's event log keeps of an error (every message down its chain);
:class:`Secrets` holds distinctive secret values with every form in which one could be written (plain,
URL-encoded, base64, JSON-escaped) and names where any of them shows up in a blob of bytes.
"""

from __future__ import annotations

import base64
import json
import traceback
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass


def chain_text(exc: BaseException) -> str:
    """The message of ``exc`` and of every exception chained under it, as a traceback prints them."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.extend(traceback.format_exception_only(current))
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return "".join(parts)


def written_forms(value: str) -> set[bytes]:
    """The byte strings ``value`` may be written as: plain, URL-encoded, JSON-escaped, base64 (at each of the
    three alignments it may sit at inside a longer encoded text), UTF-16 (a Windows-style log)."""
    text = value.encode()
    forms = {text, urllib.parse.quote(value, safe="").encode(), urllib.parse.quote_plus(value).encode(),
             json.dumps(value)[1:-1].encode(), value.encode("utf-16-le")}
    for pad in range(3):  # the base64 of the value inside a longer base64 text, whatever its offset
        encoded = base64.b64encode(b"\0" * pad + text)[4 if pad else 0:]
        forms.add(encoded[:len(encoded) - 4])  # its last group mixes in what follows it
        forms.add(base64.urlsafe_b64encode(b"\0" * pad + text)[4 if pad else 0:][:len(encoded) - 4])
    return {form for form in forms if len(form) >= 12}


@dataclass(frozen=True)
class Leak:
    """One secret found: which one, in which form, where (a file, an object, a table and row), and around it."""

    secret: str
    form: str
    where: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.secret} ({self.form}) in {self.where}: ...{self.excerpt}..."


class Secrets:
    """Named distinctive secret values and every form they may be written in."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = dict(values)
        self._forms = [(name, form) for name, value in self.values.items() for form in sorted(written_forms(value))]

    def find(self, blob: bytes, where: str) -> Iterator[Leak]:
        """Every secret in ``blob`` (case-insensitively for the text forms), named with ``where``."""
        lowered = blob.lower()
        for name, form in self._forms:
            start = lowered.find(form.lower()) if form.isascii() else blob.find(form)
            if start >= 0:
                excerpt = blob[max(0, start - 80):start + len(form) + 40].decode("utf-8", "replace")
                yield Leak(name, _form_name(form, self.values[name]), where, excerpt.replace("\n", "\\n"))

    def find_all(self, blobs: Iterable[tuple[str, bytes]]) -> list[Leak]:
        """The leaks in every ``(where, blob)``."""
        return [leak for where, blob in blobs for leak in self.find(blob, where)]


def _form_name(form: bytes, value: str) -> str:
    if form == value.encode():
        return "plain"
    if form in (urllib.parse.quote(value, safe="").encode(), urllib.parse.quote_plus(value).encode()):
        return "url-encoded"
    if form == json.dumps(value)[1:-1].encode():
        return "json-escaped"
    return "utf-16" if form == value.encode("utf-16-le") else "base64"
