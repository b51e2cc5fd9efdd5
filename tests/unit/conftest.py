"""Unit tests run without Ray: any attempt to start it fails the test."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        import ray
    except ImportError:  # nothing to keep out
        return

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("unit tests must not start Ray (use LocalBus)")

    monkeypatch.setattr(ray, "init", refuse)
