"""Shared fixtures of the e2e tier: a real headless Chromium and a folder for artifacts.

- ``chromium_browser`` (session): Debian's chromium driven by Playwright (``avatar.browser``);
- ``chromium_page``: a fresh page (1280 x 800) in its own context, closed after the test; page
  errors are collected in ``page.twin_errors`` (a list of strings);
- ``artifacts``: where tests save screenshots and rendered files for a human to look at:
  ``$TWIN_ARTIFACTS`` or ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avatar.browser import chromium

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def artifacts() -> Path:
    folder = Path(os.environ.get("TWIN_ARTIFACTS") or ROOT / "tests" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def chromium_page(chromium_browser: Any) -> Iterator[Any]:
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.twin_errors = errors
    try:
        yield page
    finally:
        context.close()
