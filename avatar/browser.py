"""Headless Chromium for the avatar's tests and ``twin bench avatar``: Debian's browser, driven by
Playwright, with no browser download (``playwright install`` is never needed).

``chromium()`` is a context manager giving a Playwright ``Browser``; ``CHROMIUM`` is the
executable (``$TWIN_CHROMIUM`` or ``/usr/bin/chromium``). Audio starts without a click (the page
still shows "click to enable sound" when a real browser keeps it suspended).

Rendering is all software. WebGL runs on SwiftShader; the page itself (2D SVG) is composited in
software (``--disable-gpu-compositing``): on a machine without a GPU, compositing through
SwiftShader costs the avatar page most of its frame rate (``twin bench avatar`` measures both).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM = os.environ.get("TWIN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--enable-unsafe-swiftshader",
    "--use-angle=swiftshader",
    "--autoplay-policy=no-user-gesture-required",
)
SOFTWARE_COMPOSITING = "--disable-gpu-compositing"
INSTALL_HINT = ("the browser tests need Debian's chromium (apt-get install chromium) and "
                "Playwright (pip install playwright; no `playwright install`)")


class BrowserUnavailable(RuntimeError):
    """Chromium or Playwright is missing."""


@contextmanager
def chromium(*, headless: bool = True, gpu_compositing: bool = False,
             extra_args: tuple[str, ...] = ()) -> Iterator[Any]:
    """A headless Chromium ``Browser`` (Playwright's sync API); ``gpu_compositing`` composites
    through SwiftShader instead of in software."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        raise BrowserUnavailable(f"{INSTALL_HINT} ({error})") from None
    if not os.path.exists(CHROMIUM):
        raise BrowserUnavailable(f"{INSTALL_HINT}: no {CHROMIUM}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=headless,
            args=launch_args(gpu_compositing=gpu_compositing, extra_args=extra_args))
        try:
            yield browser
        finally:
            browser.close()


def launch_args(*, gpu_compositing: bool = False, extra_args: tuple[str, ...] = ()) -> list[str]:
    """Chromium's command line arguments (for a second browser from the same Playwright:
    ``browser.browser_type.launch(executable_path=CHROMIUM, args=launch_args(...))``)."""
    compositing = () if gpu_compositing else (SOFTWARE_COMPOSITING,)
    return [*CHROMIUM_ARGS, *compositing, *extra_args]


def wait_until(page: Any, expression: str, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``expression`` in ``page`` until it is truthy; its value, or ``TimeoutError``.

    (Playwright's ``wait_for_function`` evaluates strings with ``eval``, which the avatar page's
    Content-Security-Policy forbids; ``page.evaluate`` is not subject to it.)
    """
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"page: {expression} still false after {timeout:g} s")
        page.wait_for_timeout(interval * 1000)
