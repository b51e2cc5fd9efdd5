"""The session log: what is appended comes back equal and in order, filters select the right
rows, undecodable rows are skipped and counted (not fatal), logs from older and newer versions
stay readable, and files that are not logs fail with ``LogError`` naming the path."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from twin.log import SCHEMA_VERSION, LogError, LogReader, SessionLog, find_log
from twin.messages import (
    ActorError,
    BehaviorObservation,
    Message,
    MissionEvent,
    Speech,
    Transcript,
    TwinUtterance,
    Viseme,
    Word,
    encode,
)

pytestmark = pytest.mark.unit

T0 = 1_700_000_000.0

CONFIG: dict[str, Any] = {
    "session": {"log_dir": "sessions"},
    "actors": [{"name": "dialogue", "class": "actors.dialogue:Dialogue", "settings": {"k": 3}}],
    "ratio": 0.25,
    "enabled": True,
    "nothing": None,
}

SESSION: list[Message] = [
    MissionEvent(
        kind="mission_started", mission="drill", mission_time=0.0, source="director", t=T0, seq=0
    ),
    Transcript(
        text="contact front",
        final=True,
        words=[Word(word="contact", start=0.1, end=0.4), Word(word="front", start=0.4, end=0.8)],
        source="asr",
        t=T0 + 1.0,
        turn=1,
        seq=0,
    ),
    BehaviorObservation(
        frame_t=1.5, face_present=True, blendshapes={"jawOpen": 0.3}, source="vision", t=T0 + 1.5
    ),
    TwinUtterance(
        text="Take cover.", index=0, final=True, source="dialogue", t=T0 + 2.0, turn=1, seq=0
    ),
    Speech(
        text="Take cover.",
        index=0,
        final=True,
        pcm=bytes(range(256)),
        visemes=[Viseme(viseme="aa", start=0.0, duration=0.1)],
        source="tts",
        t=T0 + 2.5,
        turn=1,
        seq=0,
    ),
    Transcript(text="moving", final=True, source="asr", t=T0 + 4.0, turn=2, seq=1),
    TwinUtterance(text="Good.", index=0, final=True, source="dialogue", t=T0 + 5.0, turn=2, seq=1),
    MissionEvent(
        kind="mission_ended", mission="drill", mission_time=5.0, source="director", t=T0 + 6, seq=1
    ),
]


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    path = tmp_path / "drill-1.db"
    log = SessionLog.create(path, {"id": "drill-1", "config": CONFIG, "mission": "drill"})
    log.append(SESSION[:3])
    log.append(SESSION[3:])
    log.close()
    return path


@pytest.fixture
def reader(log_path: Path) -> Iterator[LogReader]:
    with LogReader(log_path) as opened:
        yield opened


def insert_row(path: Path, data: bytes, *, kind: str = "transcript", t: float = T0 + 10) -> None:
    """Write a row as another (older, newer or broken) writer would."""
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO messages(t, type, turn, source, seq, data) VALUES (?,?,?,?,?,?)",
            (t, kind, None, "elsewhere", 0, data),
        )
    db.close()


# ---------------------------------------------------------------------------- writing and reading


def test_meta_round_trips(reader: LogReader) -> None:
    meta = reader.meta()
    assert meta["schema_version"] == SCHEMA_VERSION == 1
    assert meta["config"] == CONFIG
    assert meta["id"] == "drill-1"
    assert meta["mission"] == "drill"
    assert isinstance(meta["created"], float)


def test_set_meta_adds_and_replaces(log_path: Path) -> None:
    log = SessionLog(log_path)
    log.set_meta("ended", {"reason": "mission_ended", "messages": 8})
    log.set_meta("mission", "other")
    log.close()
    with LogReader(log_path) as reader:
        meta = reader.meta()
    assert meta["ended"] == {"reason": "mission_ended", "messages": 8}
    assert meta["mission"] == "other"


def test_messages_come_back_equal_and_in_order(reader: LogReader) -> None:
    assert list(reader.messages()) == SESSION
    assert reader.skipped == 0


def test_records_carry_the_envelope_columns(reader: LogReader) -> None:
    records = list(reader.records())
    assert [r.id for r in records] == list(range(1, len(SESSION) + 1))
    for record, message in zip(records, SESSION, strict=True):
        assert record.message == message
        assert record.error is None
        assert (record.t, record.turn, record.source, record.seq) == (
            message.t,
            message.turn,
            message.source,
            message.seq,
        )
    assert [r.type for r in records] == [
        "mission_event",
        "transcript",
        "behavior_observation",
        "twin_utterance",
        "speech",
        "transcript",
        "twin_utterance",
        "mission_event",
    ]


def test_append_nothing_is_a_no_op(log_path: Path) -> None:
    log = SessionLog(log_path)
    log.append([])
    assert log.appended == 0
    log.close()
    with LogReader(log_path) as reader:
        assert reader.count() == len(SESSION)


def test_appended_messages_are_visible_to_an_open_reader(log_path: Path) -> None:
    with LogReader(log_path) as reader:
        last = list(reader.records())[-1].id
        log = SessionLog(log_path)
        late = ActorError(actor="asr", error="boom", recoverable=True, source="asr", t=T0 + 7)
        log.append([late])
        assert log.appended == 1
        log.close()
        assert list(reader.messages(after_id=last)) == [late]


# ---------------------------------------------------------------------------- filters


def test_filter_by_types(reader: LogReader) -> None:
    got = list(reader.messages(types=["transcript", "mission_event"]))
    assert got == [m for m in SESSION if isinstance(m, Transcript | MissionEvent)]
    assert list(reader.messages(types=[])) == []


def test_filter_by_turn(reader: LogReader) -> None:
    assert list(reader.messages(turn=1)) == [m for m in SESSION if m.turn == 1]
    assert list(reader.messages(turn=2)) == [m for m in SESSION if m.turn == 2]
    assert list(reader.messages(turn=99)) == []


def test_filter_by_source(reader: LogReader) -> None:
    assert list(reader.messages(source="asr")) == [m for m in SESSION if m.source == "asr"]


def test_filter_by_time_is_inclusive(reader: LogReader) -> None:
    got = list(reader.messages(since=T0 + 1.5, until=T0 + 4.0))
    assert got == [m for m in SESSION if T0 + 1.5 <= m.t <= T0 + 4.0]
    assert [m.t - T0 for m in got] == [1.5, 2.0, 2.5, 4.0]


def test_filter_after_id_and_limit(reader: LogReader) -> None:
    assert list(reader.messages(after_id=5)) == SESSION[5:]
    assert list(reader.messages(limit=2)) == SESSION[:2]
    assert list(reader.messages(after_id=2, limit=1)) == [SESSION[2]]


def test_filters_combine(reader: LogReader) -> None:
    got = list(reader.messages(types=["twin_utterance"], turn=2, source="dialogue"))
    assert got == [SESSION[6]]


def test_count(reader: LogReader) -> None:
    assert reader.count() == len(SESSION)
    assert reader.count(types=["transcript"]) == 2
    assert reader.count(types=["transcript", "speech"]) == 3
    assert reader.count(types=["metric"]) == 0


# ---------------------------------------------------------------------------- damaged rows


def test_undecodable_rows_are_skipped_and_counted(log_path: Path) -> None:
    insert_row(log_path, b"\xc1garbage\x00\xff")
    insert_row(log_path, msgspec.msgpack.encode({"type": "hologram", "x": 1}), kind="hologram")
    after = Transcript(text="still here", final=True, source="asr", t=T0 + 11)
    log = SessionLog(log_path)
    log.append([after])
    log.close()

    with LogReader(log_path) as reader:
        assert list(reader.messages()) == [*SESSION, after]
        assert reader.skipped == 2
        assert reader.count() == len(SESSION) + 3

    with LogReader(log_path) as reader:
        bad = [record for record in reader.records() if record.message is None]
        assert [record.type for record in bad] == ["transcript", "hologram"]
        assert all(record.error for record in bad)
        assert "hologram" in str(bad[1].error)
        assert reader.skipped == 2


def test_row_from_an_older_version_decodes_with_defaults(log_path: Path) -> None:
    old = {"type": "transcript", "text": "old words", "final": True, "source": "asr", "t": T0 + 9}
    insert_row(log_path, msgspec.msgpack.encode(old))
    with LogReader(log_path) as reader:
        message = list(reader.messages())[-1]
        assert reader.skipped == 0
    assert message == Transcript(text="old words", final=True, source="asr", t=T0 + 9)
    assert isinstance(message, Transcript)
    assert message.language == "en"
    assert message.words == []
    assert message.turn is None


def test_row_from_a_newer_version_with_an_unknown_field_decodes(log_path: Path) -> None:
    new = {"type": "transcript", "text": "new", "final": False, "sentiment": {"x": 1}}
    insert_row(log_path, msgspec.msgpack.encode(new))
    with LogReader(log_path) as reader:
        assert list(reader.messages())[-1] == Transcript(text="new", final=False)


def test_newer_schema_version_is_still_readable(log_path: Path) -> None:
    with sqlite3.connect(log_path) as db:
        db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    db.close()
    with LogReader(log_path) as reader:
        assert reader.meta()["schema_version"] == 2
        assert list(reader.messages()) == SESSION


def test_meta_value_that_is_not_json_is_kept_as_text(log_path: Path) -> None:
    with sqlite3.connect(log_path) as db:
        db.execute("INSERT INTO meta(key, value) VALUES ('note', 'plain {text')")
    db.close()
    with LogReader(log_path) as reader:
        assert reader.meta()["note"] == "plain {text"


# ---------------------------------------------------------------------------- not a log


def test_reader_on_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.db"
    with pytest.raises(LogError, match=re.escape(str(path))):
        LogReader(path)
    assert not path.exists(), "the reader must not create a file"


def test_reader_on_a_directory(tmp_path: Path) -> None:
    with pytest.raises(LogError, match=re.escape(str(tmp_path))):
        LogReader(tmp_path)


def test_reader_on_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are not the droids you are looking for\n" * 100)
    with pytest.raises(LogError, match=re.escape(str(path))):
        LogReader(path)


@pytest.mark.parametrize("tables", ["", "CREATE TABLE meta (key TEXT, value TEXT)"])
def test_reader_on_sqlite_without_the_log_tables(tmp_path: Path, tables: str) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE unrelated (x INTEGER)")
        if tables:
            db.execute(tables)
    db.close()
    with pytest.raises(LogError, match=re.escape(f"{path}: not a twin session log")):
        LogReader(path)


def test_create_refuses_an_existing_path(log_path: Path) -> None:
    before = log_path.read_bytes()
    with pytest.raises(LogError, match=re.escape(str(log_path))):
        SessionLog.create(log_path, {"id": "again"})
    assert log_path.read_bytes() == before


def test_open_for_append_needs_an_existing_log(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    with pytest.raises(LogError, match=re.escape(str(path))):
        SessionLog(path)


def test_create_makes_parent_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "s.db"
    SessionLog.create(path, {}).close()
    with LogReader(path) as reader:
        assert reader.count() == 0
        assert list(reader.messages()) == []


class _CutShort:
    """A connection that fails at its ``fail_at``-th statement, as a process killed there."""

    def __init__(self, db: sqlite3.Connection, fail_at: int) -> None:
        self.db, self.fail_at, self.statements = db, fail_at, 0

    def _count(self) -> None:
        self.statements += 1
        if self.statements == self.fail_at:
            raise KeyboardInterrupt("cut short")

    def execute(self, *args: Any) -> sqlite3.Cursor:
        self._count()
        return self.db.execute(*args)

    def executemany(self, *args: Any) -> sqlite3.Cursor:
        self._count()
        return self.db.executemany(*args)

    def executescript(self, script: str) -> sqlite3.Cursor:
        self._count()
        return self.db.executescript(script)

    def close(self) -> None:
        self.db.close()


@pytest.mark.parametrize("fail_at", [1, 3, 6, 8, 9])  # 9: its COMMIT
def test_a_log_whose_creation_is_cut_short_is_not_left_half_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int) -> None:
    """Cut anywhere in its creation, a log is not at its path at all (an empty or half-made
    file there would be refused by every reader); a leftover draft does not stop the next
    attempt, which makes a whole log."""
    import twin.log

    path = tmp_path / "s.db"
    connect = twin.log._connect
    monkeypatch.setattr(twin.log, "_connect", lambda at: _CutShort(connect(at), fail_at))
    with pytest.raises(KeyboardInterrupt):
        SessionLog.create(path, {"session": "s"})
    assert not path.exists()
    monkeypatch.setattr(twin.log, "_connect", connect)
    (tmp_path / ".s.db.new").write_bytes(b"left by a session killed meanwhile")
    SessionLog.create(path, {"session": "s"}).close()
    with LogReader(path) as reader:
        assert reader.meta()["session"] == "s" and reader.count() == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db"]


# ---------------------------------------------------------------------------- durability


def test_log_is_in_wal_mode_with_full_sync(log_path: Path) -> None:
    with sqlite3.connect(log_path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    log = SessionLog(log_path)
    # synchronous is per connection: check the writer's own (2 = FULL).
    assert log._db.execute("PRAGMA synchronous").fetchone()[0] == 2
    log.close()


# ---------------------------------------------------------------------------- find_log


@pytest.fixture
def sessions(tmp_path: Path) -> Path:
    folder = tmp_path / "sessions"
    for session_id in ("drill-20240101-120000-ab12", "drill-20240101-130000-cd34", "route-1"):
        SessionLog.create(folder / f"{session_id}.db", {"id": session_id}).close()
    return folder


def test_find_log_by_path(sessions: Path) -> None:
    path = sessions / "route-1.db"
    assert find_log(path, log_dir="elsewhere") == path
    assert find_log(str(path), log_dir="elsewhere") == path


def test_find_log_by_id_and_unique_prefix(sessions: Path) -> None:
    full = "drill-20240101-130000-cd34"
    assert find_log(full, sessions) == sessions / f"{full}.db"
    assert find_log("drill-20240101-13", sessions) == sessions / f"{full}.db"
    assert find_log("route", sessions) == sessions / "route-1.db"


def test_find_log_ambiguous_prefix_names_the_candidates(sessions: Path) -> None:
    with pytest.raises(LogError, match="ambiguous") as raised:
        find_log("drill", sessions)
    assert "drill-20240101-120000-ab12" in str(raised.value)
    assert "drill-20240101-130000-cd34" in str(raised.value)


def test_find_log_missing(sessions: Path, tmp_path: Path) -> None:
    with pytest.raises(LogError, match="'nope'"):
        find_log("nope", sessions)
    with pytest.raises(LogError, match="'nope'"):
        find_log("nope", tmp_path / "no-such-folder")


def test_find_log_prefers_an_exact_id_over_longer_ones(tmp_path: Path) -> None:
    for session_id in ("run1", "run10"):
        SessionLog.create(tmp_path / f"{session_id}.db", {"id": session_id}).close()
    assert find_log("run1", tmp_path) == tmp_path / "run1.db"


def test_meta_written_by_create_uses_json(log_path: Path) -> None:
    with sqlite3.connect(log_path) as db:
        rows = dict(db.execute("SELECT key, value FROM meta").fetchall())
    db.close()
    assert rows["schema_version"] == "1"
    assert rows["config"].startswith("{")


def test_message_blob_is_the_registry_encoding(log_path: Path) -> None:
    with sqlite3.connect(log_path) as db:
        blobs = [row[0] for row in db.execute("SELECT data FROM messages ORDER BY id")]
    db.close()
    assert blobs == [encode(message) for message in SESSION]
