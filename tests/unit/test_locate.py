"""``twin.models.locate``: a registry name or an accepted local path, else a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin import models

pytestmark = pytest.mark.unit


def test_locate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_MODELS", str(tmp_path / "empty"))
    with pytest.raises(models.ModelMissing, match="twin models fetch whisper-base"):
        models.locate("whisper-base", kind="asr", accept=Path.is_dir, expected="a folder")
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF")
    found = models.locate(str(gguf), kind="llm", accept=Path.is_file, expected="a .gguf file")
    assert found == gguf
    with pytest.raises(models.ModelError, match=r"smollm2-135m-instruct.*nor a \.gguf file"):
        models.locate(str(tmp_path / "nowhere.gguf"), kind="llm", accept=Path.is_file,
                      expected="a .gguf file")
