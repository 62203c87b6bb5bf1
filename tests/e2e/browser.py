"""Chromium for the UI tests: the system's browser driven by Playwright, never one Playwright downloads.

``chromium()`` skips the test (with the reason) only when the browser is missing or cannot start;
every other problem is a failure. Screenshots go to ``test-artifacts/browser/`` at the repo root.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("BLUEGREEN_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = REPO / "test-artifacts" / "browser"


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium from ``CHROMIUM`` (Debian's package); skips when it is absent or will not start."""
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        except PlaywrightError as err:
            first_line = (err.message or str(err)).strip().splitlines()[0]
            pytest.skip(f"Chromium at {CHROMIUM} could not be launched: {first_line}")
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Page, name: str) -> Path:
    """Save what the page shows now as ``test-artifacts/browser/<name>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def forget_screenshots() -> None:
    """Remove the screenshots of an earlier run."""
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()


def editor_of(form: Locator, label: str) -> Locator:
    """The JSON editor (Monaco) of the form field whose label starts with ``label``."""
    return form.locator(
        f"xpath=.//label[starts-with(normalize-space(), '{label}')]"
        "/ancestor::*[.//*[contains(@class, 'monaco-editor')]][1]//*[contains(@class, 'monaco-editor')]"
    ).first


def paste_json(page: Page, editor: Locator, value: Any) -> None:
    """Replace a JSON editor's text as a person would: select all, paste.

    Typing would not do: the editor closes every bracket and quote typed, doubling them.
    """
    editor.click()
    page.keyboard.press("ControlOrMeta+A")
    page.evaluate("text => navigator.clipboard.writeText(text)", json.dumps(value, indent=2))
    page.keyboard.press("ControlOrMeta+V")
