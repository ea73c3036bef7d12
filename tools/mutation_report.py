"""Print the kill rate of the last `mutmut run`, per module and in total; exit 1 below the bar.

Reads mutmut's per-file results (``mutants/<path>.meta``) for every file of ``[tool.mutmut] only_mutate``
in ``pyproject.toml``. A mutant counts as killed when a test failed (or timed out) under it; survived,
untested ("no tests") and unchecked mutants all count against the rate. ``make mutants`` runs mutmut,
then this.

Usage: python tools/mutation_report.py [--min-rate 90] [--survivors]
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# mutmut's exit codes (mutmut.stats.status_by_exit_code), grouped by what they mean for the rate
KILLED = {1, 3, 24, -24, 36, 152, 255, 37}  # a test failed, pytest failed internally, a timeout, a type check
SURVIVED = {0}
NO_TESTS = {5, 33}
SKIPPED = {34}


def module_results(path: str) -> dict[str, int | None]:
    """mutant name -> mutmut's exit code (None: not checked) of one mutated file."""
    meta = ROOT / "mutants" / (path + ".meta")
    if not meta.exists():
        raise SystemExit(f"no mutmut results for {path} ({meta} is missing): run `make mutants`")
    return json.loads(meta.read_text())["exit_code_by_key"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-rate", type=float, default=90.0, help="lowest total kill rate accepted, in percent")
    parser.add_argument("--survivors", action="store_true", help="list every mutant that was not killed")
    args = parser.parse_args(argv)

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    rows, not_killed = [], []
    totals = dict.fromkeys(("mutants", "killed", "survived", "no_tests", "other"), 0)
    for path in config["only_mutate"]:
        counts = dict.fromkeys(totals, 0)
        for name, code in sorted(module_results(path).items()):
            if code in SKIPPED:
                continue
            counts["mutants"] += 1
            kind = ("killed" if code in KILLED else "survived" if code in SURVIVED
                    else "no_tests" if code in NO_TESTS else "other")
            counts[kind] += 1
            if kind != "killed":
                not_killed.append(f"{name}  ({'not checked' if code is None else kind.replace('_', ' ')})")
        for key in totals:
            totals[key] += counts[key]
        rows.append((path.removeprefix("ml_platform/"), counts))

    def rate(counts: dict[str, int]) -> float:
        return 100.0 * counts["killed"] / counts["mutants"] if counts["mutants"] else 100.0

    print(f"{'module':<28} {'mutants':>8} {'killed':>7} {'survived':>9} {'no tests':>9} {'other':>6} {'rate':>7}")
    for module, counts in [*rows, ("total", totals)]:
        print(f"{module:<28} {counts['mutants']:>8} {counts['killed']:>7} {counts['survived']:>9} "
              f"{counts['no_tests']:>9} {counts['other']:>6} {rate(counts):>6.1f}%")
    if args.survivors:
        print("\nnot killed (`.venv/bin/mutmut show NAME` prints the change):")
        for line in not_killed:
            print(f"  {line}")
    total_rate = rate(totals)
    if total_rate < args.min_rate:
        print(f"\nFAILED: {total_rate:.1f}% of the mutants were killed, the bar is {args.min_rate:g}%: kill the "
              "survivors with tests of the behaviour they change, or list the equivalent ones in README.md "
              "(`python tools/mutation_report.py --survivors` lists them)")
        return 1
    print(f"\n{total_rate:.1f}% of the mutants were killed (bar: {args.min_rate:g}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
