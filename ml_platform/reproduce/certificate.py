"""The reproduction certificate: every comparison, the verdict, the first difference; stored beside the version.

The certificate is bit-exact only if every comparison is equal (every recorded partition's data hash,
the training set's data hash, the model's sha256, the signals, the environment package by package).
Otherwise it names the first difference, in the order the comparisons were made (environment, then
sources up to the training set, then the model, then the signals). JSON for machines, markdown for
people; :mod:`ml_platform.reproduce.publish` stores both beside the version. Pure.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from ml_platform.reproduce.compare import Comparison

__all__ = ["CERTIFICATE_DIR", "CERTIFICATE_TAG", "VERDICT_TAG", "Certificate", "certificate_of"]

CERTIFICATE_DIR = "reproduction"
CERTIFICATE_TAG = "ml_platform.reproduction.certificate"
VERDICT_TAG = "ml_platform.reproduction.bit_exact"
_LISTED = 50  # differing comparisons listed in the markdown summary


@dataclass(frozen=True)
class Certificate:
    """What a reproduction of one registered model version proved.

    Attributes:
        model / version: the registered model version reproduced.
        commit: the git commit its code was checked out at.
        created_at: when the certificate was made (ISO-8601 UTC).
        comparisons: every comparison, in the order made.
        facts: free-form context (work directory, backfill id, timings), JSON-ready.
    """

    model: str
    version: str
    commit: str | None
    created_at: str
    comparisons: tuple[Comparison, ...]
    facts: dict[str, object] = field(default_factory=dict, hash=False)

    @property
    def bit_exact(self) -> bool:
        return bool(self.comparisons) and all(c.equal for c in self.comparisons)

    @property
    def first_difference(self) -> Comparison | None:
        return next((c for c in self.comparisons if not c.equal), None)

    @property
    def exit_code(self) -> int:
        """0 only if everything is bit-exact."""
        return 0 if self.bit_exact else 1

    def counts(self) -> dict[str, tuple[int, int]]:
        """Per kind: (equal, compared)."""
        total, equal = Counter(), Counter()
        for c in self.comparisons:
            total[str(c.kind)] += 1
            equal[str(c.kind)] += int(c.equal)
        return {kind: (equal[kind], total[kind]) for kind in total}

    def to_dict(self) -> dict[str, object]:
        first = self.first_difference
        return {"model": self.model, "version": self.version, "commit": self.commit, "created_at": self.created_at,
                "bit_exact": self.bit_exact, "first_difference": None if first is None else first.to_dict(),
                "counts": {k: {"equal": e, "compared": n} for k, (e, n) in self.counts().items()},
                "comparisons": [c.to_dict() for c in self.comparisons], "facts": self.facts}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str).encode("utf-8")

    def verdict(self) -> str:
        """One line: bit-exact, or the first difference."""
        if self.bit_exact:
            return (f"{self.model} v{self.version} reproduced bit-exactly: {len(self.comparisons)} comparisons, "
                    "all equal")
        first = self.first_difference
        assert first is not None or not self.comparisons
        if first is None:
            return f"{self.model} v{self.version}: nothing was compared"
        return f"{self.model} v{self.version} NOT reproduced: first difference in {first.kind} {first.subject}: " \
               f"{first.difference or 'differs'}"

    def summary(self) -> str:
        """The readable certificate (markdown)."""
        lines = [f"# Reproduction certificate: {self.model} v{self.version}", "",
                 f"- commit: `{self.commit or 'unknown'}`", f"- created: {self.created_at}",
                 f"- verdict: **{'bit-exact' if self.bit_exact else 'NOT bit-exact'}**", "", self.verdict(), "",
                 "| compared | equal | total |", "|---|---:|---:|"]
        lines += [f"| {kind} | {e} | {n} |" for kind, (e, n) in self.counts().items()]
        differing = [c for c in self.comparisons if not c.equal]
        if differing:
            lines += ["", "## Differences", "", "| kind | subject | recorded | reproduced | where |", "|---|---|---|---|---|"]
            lines += [f"| {c.kind} | {c.subject} | `{c.recorded}` | `{c.reproduced}` | {c.difference or ''} |"
                      for c in differing[:_LISTED]]
            if len(differing) > _LISTED:
                lines.append(f"\n... and {len(differing) - _LISTED} more (see certificate.json)")
        if self.facts:
            lines += ["", "## Facts", ""] + [f"- {k}: {v}" for k, v in sorted(self.facts.items())]
        return "\n".join(lines) + "\n"


def certificate_of(comparisons: Sequence[Comparison], *, model: str, version: str, commit: str | None,
                   facts: dict[str, object] | None = None) -> Certificate:
    """A certificate made now."""
    return Certificate(model, str(version), commit, dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                       tuple(comparisons), dict(facts or {}))
