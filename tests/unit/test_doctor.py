"""``twin doctor`` as data: the cheap checks run and explain themselves."""

from __future__ import annotations

import pytest

from twin import doctor, models

pytestmark = pytest.mark.unit


def test_checks_without_ray(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_MODELS", str(tmp_path))
    result = doctor.checks(start_ray=False)

    areas = {check.area for check in result}
    assert {"python", "packages", "models", "audio", "camera"} <= areas
    assert "ray" not in areas
    for check in result:
        assert check.detail, check
        assert check.ok or check.hint, check

    python = [c for c in result if c.area == "python"]
    assert len(python) == 1 and python[0].ok

    packages = {c.name: c for c in result if c.area == "packages"}
    for required in ("msgspec", "pydantic", "yaml", "typer"):
        assert packages[required].ok, packages[required]
    assert "optional" in packages["mediapipe"].detail

    by_model = {c.name: c for c in result if c.area == "models"}
    for name in models.REGISTRY:
        assert not by_model[name].ok
        assert by_model[name].hint == f"twin models fetch {name}"
