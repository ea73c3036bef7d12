"""The Dagster UI in a real headless Chromium (Debian's ``/usr/bin/chromium`` through Playwright), with screenshots.

No browser is downloaded: Playwright drives the machine's Chromium by ``executable_path``, headless, sandbox
and GPU off, no first-run, sync, component updates or background networking, in a fresh profile folder.
Dagster's first-run dialogs and toasts are dismissed whenever a page is opened. Every wait is bounded.

Screenshots are test artefacts: ``<repo>/.ml_platform/test-artifacts/screenshots/<test>/NN-<name>.png``
(``.ml_platform`` is git-ignored; ``ML_PLATFORM_TEST_ARTIFACTS`` moves the root). Each one's path is printed,
and a failed wait saves one of the page as it was before failing.

Without Chromium or Playwright a test skips with the reason, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

__all__ = ["CHROMIUM", "UI", "artifacts_dir", "open_ui", "require_or_skip"]

CHROMIUM = Path(os.environ.get("ML_PLATFORM_CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[2]
ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage")
#: Buttons of Dagster's first-run dialogs, tours and toasts that close them without changing anything.
_DISMISS = re.compile(r"^\s*(dismiss|got it|close|no thanks|not now|skip|maybe later|ok)\s*$", re.IGNORECASE)
_DEFAULT_WAIT_MS = 60_000


def require_or_skip(reason: str) -> None:
    """Skip (fail under ``CI=true``) because what the UI test needs cannot start."""
    if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
        pytest.fail(f"the headless browser could not start under CI=true: {reason}", pytrace=False)
    pytest.skip(f"headless browser unavailable, test skipped (set CI=true to make this a failure): {reason}")


def artifacts_dir(test_name: str) -> Path:
    """The folder this test's screenshots go to (emptied first)."""
    root = Path(os.environ.get("ML_PLATFORM_TEST_ARTIFACTS") or ROOT / ".ml_platform" / "test-artifacts")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name).strip("_")[:150]
    folder = root / "screenshots" / safe
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


class UI:
    """One browser page on the Dagster webserver at ``base``; screenshots go to ``shots``."""

    def __init__(self, page, base: str, shots: Path) -> None:  # type: ignore[no-untyped-def]
        self.page = page
        self.base = base.rstrip("/")
        self.shots = shots
        self.taken: list[Path] = []
        self.console_errors: list[str] = []
        page.on("console", lambda msg: self.console_errors.append(msg.text) if msg.type == "error" else None)

    # -- pages ----------------------------------------------------------------------------------------
    def open(self, path: str, *, wait_for: Sequence[str] = (), timeout_ms: int = _DEFAULT_WAIT_MS) -> None:
        """Go to ``path`` of the webserver, dismiss dialogs, wait for each text of ``wait_for``."""
        self.page.goto(self.base + path, wait_until="domcontentloaded", timeout=timeout_ms)
        self.dismiss_dialogs()
        for text in wait_for:
            self.wait_text(text, timeout_ms=timeout_ms)
        self.dismiss_dialogs()

    def asset_graph(self, **kwargs) -> None:  # type: ignore[no-untyped-def]
        """The global asset lineage (every code location's asset graph)."""
        self.open("/asset-groups", **kwargs)

    def asset(self, path: Sequence[str], *, view: str | None = None, partition: str | None = None,
              **kwargs) -> None:  # type: ignore[no-untyped-def]
        """An asset's page (``view``: ``definition``, ``events``, ``partitions``, ``checks``, ...)."""
        query = {k: v for k, v in (("view", view), ("partition", partition)) if v}
        suffix = "?" + urllib.parse.urlencode(query) if query else ""
        self.open("/assets/" + "/".join(urllib.parse.quote(p) for p in path) + suffix, **kwargs)

    def run(self, run_id: str, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.open(f"/runs/{run_id}", **kwargs)

    def backfills(self, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.open("/overview/backfills", **kwargs)

    def backfill(self, backfill_id: str, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.open(f"/runs/b/{backfill_id}", **kwargs)

    def show_code_version(self, code_version: str) -> None:
        """On an asset's overview: open its "Compute details" (folded by default) and wait for the code version."""
        if not self.page.get_by_text("Code version").count():
            self.page.get_by_text("Compute details").first.click()
        self.wait_text("Code version")
        self.wait_text(code_version)

    def show_steps(self, state: str, steps: Sequence[str]) -> None:
        """On a run's page: unfold the steps panel of ``state`` (e.g. ``Succeeded (6)``), wait for each step's name."""
        self.wait_text(state)
        self.page.get_by_text(state).first.click()
        for step in steps:
            self.wait_text(step)

    def show_run_config(self, text: str) -> None:
        """On a run's page: open "View tags and config" and wait for ``text`` in the run's config (YAML wraps long
        strings: give a fragment of one line)."""
        self.page.get_by_role("button", name="View tags and config").click()
        self.page.locator("[role=dialog]").get_by_text(text).first.wait_for(state="visible", timeout=_DEFAULT_WAIT_MS)

    # -- waiting, dialogs, screenshots ------------------------------------------------------------------
    def wait_text(self, text: str | re.Pattern[str], *, timeout_ms: int = _DEFAULT_WAIT_MS) -> None:
        """Wait until ``text`` is visible on the page; on timeout save a screenshot and fail naming it."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.get_by_text(text).first.wait_for(state="visible", timeout=timeout_ms)
        except PlaywrightTimeout:
            shot = self.screenshot(f"missing-{re.sub(r'[^A-Za-z0-9]+', '_', str(text))[:40]}")
            raise AssertionError(f"{text!r} did not appear on {self.page.url} within {timeout_ms / 1000:.0f} s; "
                                 f"the page as it was: {shot}; console errors: {self.console_errors[-5:]}") from None

    def has_text(self, text: str | re.Pattern[str]) -> bool:
        return self.page.get_by_text(text).count() > 0

    def dismiss_dialogs(self) -> None:
        """Close whatever Dagster opened on its own (a what's-new dialog, a tour, a toast)."""
        for _ in range(3):
            dialogs = self.page.locator("[role=dialog], .bp5-dialog, .bp4-dialog, .bp5-toast, .bp4-toast")
            if dialogs.count() == 0:
                return
            buttons = dialogs.get_by_role("button", name=_DISMISS)
            if buttons.count():
                buttons.first.click(timeout=5_000)
            else:
                self.page.keyboard.press("Escape")
            self.page.wait_for_timeout(300)

    def screenshot(self, name: str) -> Path:
        """Save the whole page as ``NN-<name>.png`` in the test's folder; its path (also printed)."""
        path = self.shots / f"{len(self.taken) + 1:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        print(f"screenshot: {path}")
        return path


@contextmanager
def open_ui(base: str, test_name: str) -> Iterator[UI]:
    """A headless Chromium on the webserver ``base``, in a throwaway profile; its screenshots kept."""
    if not CHROMIUM.exists():
        require_or_skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        require_or_skip(f"playwright is not importable: {exc}")
    shots = artifacts_dir(test_name)
    profile = Path(tempfile.mkdtemp(prefix="ml_platform-chromium-"))
    try:
        with sync_playwright() as playwright:
            try:
                context = playwright.chromium.launch_persistent_context(
                    str(profile), executable_path=str(CHROMIUM), headless=True, args=list(ARGS),
                    viewport={"width": 1600, "height": 1000}, timeout=60_000)
            except PlaywrightError as exc:
                require_or_skip(f"{CHROMIUM} did not start: {exc}")
            try:
                page = context.pages[0] if context.pages else context.new_page()
                page.set_default_timeout(_DEFAULT_WAIT_MS)
                yield UI(page, base, shots)
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
