"""Shared fixtures of the e2e tier: a real headless Chromium and a folder for artifacts.

- ``chromium_browser`` (session): Debian's chromium driven by Playwright (``avatar.browser``);
- ``chromium_page``: a fresh page (1280 x 800) in its own context, closed after the test; page
  errors are collected in ``page.twin_errors`` (a list of strings);
- ``artifacts``: where tests save screenshots and rendered files for a human to look at:
  ``$TWIN_ARTIFACTS`` or ``tests/artifacts/`` (git-ignored);
- ``left_of``: the processes of a `twin run` started with ``start_new_session=True`` that are
  still running (its session, Ray's processes included, and its ``twin.reaper``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
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


def processes_left(run: int) -> list[int]:
    """Processes, not zombies, in the session of ``run`` (its pid), or reaping it."""
    left: list[int] = []
    reaping = [b"-m", b"twin.reaper", str(run).encode()]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_bytes()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        state, _, _, session = raw[raw.rindex(b")") + 2:].split()[:4]
        if state != b"Z" and (int(session) == run or command[1:4] == reaping):
            left.append(int(entry.name))
    return left


@pytest.fixture
def left_of() -> Callable[[int], list[int]]:
    if not Path("/proc/self/stat").exists():
        pytest.skip("reads /proc")
    return processes_left
