"""Security as the README's threat model states it: what the twin records is its owner's only,
and role tokens are compared in constant time."""

from __future__ import annotations

import ast
import hmac
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actors.video import VideoRecorder
from avatar.access import ROLES, Access
from twin.files import private_dir
from twin.log import LogReader, SessionLog
from twin.messages import Transcript

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SECRET = "plover-quartz-lantern-meadow"  # words a grounding check lets through


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask (022), which would leave new files readable by everyone."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


# ---------------------------------------------------------------------------- file modes


def test_a_session_log_and_its_wal_files_are_readable_by_their_owner_only(
        tmp_path: Path, open_umask: None) -> None:
    before = mode(tmp_path)
    path = tmp_path / "sessions" / "nested" / "s.db"
    log = SessionLog.create(path, {"session": "s"})
    log.append([Transcript(text="the grid is 33T VM 4385 6912", final=True)])
    with LogReader(path) as reader:
        assert reader.count() == 1
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(file.exists() for file in files)
        assert [oct(mode(file)) for file in files] == [oct(0o600)] * 3
    log.close()
    assert mode(tmp_path / "sessions") == mode(tmp_path / "sessions" / "nested") == 0o700
    assert mode(tmp_path) == before  # a folder that was there is left as it was


def test_a_video_recording_is_readable_by_its_owner_only(tmp_path: Path,
                                                          open_umask: None) -> None:
    path = tmp_path / "recordings" / "operator.mp4"
    recorder = VideoRecorder(str(path), fps=10)
    for _ in range(3):
        recorder.write(np.zeros((48, 64, 3), np.uint8))
    recorder.close()
    assert path.stat().st_size > 0
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    again = tmp_path / "open.mp4"  # a file already there, readable by all: made private
    again.write_bytes(b"")
    again.chmod(0o644)
    recorder = VideoRecorder(str(again), fps=10)
    recorder.write(np.zeros((48, 64, 3), np.uint8))
    recorder.close()
    assert mode(again) == 0o600


def test_private_dir_makes_every_missing_folder_private_and_only_those(
        tmp_path: Path, open_umask: None) -> None:
    (tmp_path / "shared").mkdir(mode=0o755)
    private_dir(tmp_path / "shared" / "a" / "b")
    assert mode(tmp_path / "shared") == 0o755
    assert mode(tmp_path / "shared" / "a") == mode(tmp_path / "shared" / "a" / "b") == 0o700
    private_dir(tmp_path / "shared" / "a" / "b")  # there already: no error


# ---------------------------------------------------------------------------- tokens


def test_role_tokens_are_compared_in_constant_time_against_every_role(
        monkeypatch: pytest.MonkeyPatch) -> None:
    access = Access.from_secret(SECRET, "s1")
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    trainer = access.tokens["trainer"]
    tries = {trainer: "trainer", trainer[:-1] + "x": None, "x" + trainer[1:]: None,
             "wrong": None, trainer + trainer: None}
    for token, role in tries.items():
        calls.clear()
        assert access.role_of(token) == role
        # every role is compared, whether the token is right or wrong, near or far
        assert sorted(expected for _, expected in calls) == sorted(
            access.tokens[r].encode() for r in ROLES)


def test_no_code_of_the_gateway_or_the_runtime_compares_a_token_or_secret_itself() -> None:
    """Tokens are checked in one place (``Access.role_of``, with ``hmac.compare_digest``):
    no ``==`` or ``in`` elsewhere on a token or the session secret."""
    files = [*sorted((ROOT / "avatar").glob("*.py")), ROOT / "twin" / "runtime.py",
             ROOT / "twin" / "actor.py"]
    found = []
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare) and any(
                    isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops):
                source = ast.unparse(node).lower()
                if "token" in source or "secret" in source:
                    found.append(f"{file.name}:{node.lineno}: {ast.unparse(node)}")
    assert not found, found
