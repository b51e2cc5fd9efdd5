"""The session log: every bus message, in order, in one SQLite file per session.

The runtime creates the file with the session's metadata (its config and mission beside the
messages; the file appears whole, linked into place once they are committed); the recorder
appends to it in small transactions (WAL, ``synchronous=FULL``), so a session killed at any
moment leaves no log or a readable one holding every batch that was committed. Replay,
``twin log`` and review read it with ``LogReader``, which filters by time, type, turn and source,
and skips (and counts) records it cannot decode instead of failing, so a log written by an older
or newer twin stays readable; a file cut short still opens (``LogReader.damaged`` says why), and
its readable rows can be read (queries that reach a missing page raise ``sqlite3.DatabaseError``).

The log holds the operator's voice and words: it is created readable by its owner only (0600,
its folder 0700 when the twin makes it; ``twin.files``), and SQLite gives its ``-wal`` and
``-shm`` files the same mode. A message whose envelope SQLite cannot index as it is (a time that
is not a number, a turn or seq past 64 bits) is kept whole in ``data``; its columns hold the
nearest value SQLite takes, so one odd message never costs the batch it came in.

Layout (schema version 1)::

    meta(key TEXT PRIMARY KEY, value TEXT)            -- JSON values
    messages(id INTEGER PRIMARY KEY, t REAL, type TEXT, turn INTEGER,
             source TEXT, seq INTEGER, data BLOB)      -- data: msgpack via twin.messages
"""

from __future__ import annotations

import glob
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from twin.files import private_file
from twin.messages import Message, MessageError, decode, encode, tag_of

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    t REAL NOT NULL,
    type TEXT NOT NULL,
    turn INTEGER,
    source TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_type ON messages(type);
CREATE INDEX IF NOT EXISTS messages_turn ON messages(turn);
CREATE INDEX IF NOT EXISTS messages_t ON messages(t);
CREATE UNIQUE INDEX IF NOT EXISTS messages_once ON messages(source, seq, t, type);
"""


class LogError(RuntimeError):
    """A session log that cannot be opened or is not a twin log."""


def _connect(path: Path) -> sqlite3.Connection:
    # check_same_thread=False: the recorder writes from worker threads, one at a time.
    connection = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    return connection


class SessionLog:
    """Appends messages to a session log. One writer per file (the recorder)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise LogError(f"{self.path}: no such session log (create it with SessionLog.create)")
        self._db = _connect(self.path)
        self.appended = 0

    @classmethod
    def create(cls, path: str | Path, meta: Mapping[str, Any]) -> SessionLog:
        """Create a new log holding ``meta`` (session id, config, mission, ...).

        The file appears whole: it is written under a hidden draft name beside it and linked
        into place once its tables and metadata are committed, so a session killed while
        creating its log leaves no log (perhaps a draft, ``.<name>.new``) rather than an empty
        or half-made one that no reader takes for a session log."""
        path = Path(path)
        if path.exists():
            raise LogError(f"{path}: a session log already exists here")
        draft = path.with_name(f".{path.name}.new")
        for leftover in (draft, Path(f"{draft}-wal"), Path(f"{draft}-shm")):
            leftover.unlink(missing_ok=True)  # of an attempt killed before it was done
        private_file(draft, exclusive=True)  # 0600 before SQLite writes a byte of it
        try:
            db = _connect(draft)
            try:
                rows = {"schema_version": SCHEMA_VERSION, "created": time.time(), **meta}
                db.execute("BEGIN")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.executemany(
                    "INSERT INTO meta(key, value) VALUES (?, ?)",
                    [(key, json.dumps(value, default=str)) for key, value in rows.items()],
                )
                db.execute("COMMIT")
            finally:
                db.close()  # the last connection: its WAL is checkpointed into the file
            _place(draft, path)
        finally:
            draft.unlink(missing_ok=True)
        return cls(path)

    def append(self, messages: Sequence[Message]) -> None:
        """Write ``messages`` in one transaction; when this returns they are on disk."""
        if not messages:
            return
        rows = [
            (_time_column(m.t), tag_of(type(m)), None if m.turn is None else _int_column(m.turn),
             m.source, _int_column(m.seq), encode(m)) for m in messages
        ]
        self._db.execute("BEGIN")
        try:
            self._db.executemany(
                # a message sent again after the recorder's restart (the same source, seq,
                # time and type: the same message) is kept once
                "INSERT OR IGNORE INTO messages(t, type, turn, source, seq, data) "
                "VALUES (?,?,?,?,?,?)", rows)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self.appended += len(rows)

    def set_meta(self, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
            (key, json.dumps(value, default=str)),
        )

    def close(self) -> None:
        self._db.close()


def _place(draft: Path, path: Path) -> None:
    """Give the finished ``draft`` its name ``path``, never over an existing file."""
    try:
        os.link(draft, path)
    except FileExistsError:
        raise LogError(f"{path}: a session log already exists here") from None
    except OSError:  # a file system without hard links: a rename, checked first
        if path.exists():
            raise LogError(f"{path}: a session log already exists here") from None
        os.replace(draft, path)


_INT64 = (-(2**63), 2**63 - 1)


def _int_column(value: int) -> int:
    """``value`` within SQLite's INTEGER (64 bits); the message's data keeps it exactly."""
    return min(max(value, _INT64[0]), _INT64[1])


def _time_column(value: float) -> float:
    """``value`` as SQLite keeps a REAL: NaN would be NULL, which the column refuses (and
    ``INSERT OR IGNORE`` would drop the message without a word)."""
    return value if not math.isnan(value) else 0.0


@dataclass(frozen=True)
class LogRecord:
    """One row of the log: its message, or why it could not be decoded."""

    id: int
    t: float
    type: str
    turn: int | None
    source: str
    seq: int
    message: Message | None
    error: str | None = None


class LogReader:
    """Reads a session log, also while it is being written."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise LogError(f"{self.path}: no such session log")
        self.damaged: str | None = None  # why the file reads as damaged (cut short), if it does
        try:
            # Not mode=ro: a log left by a killed session needs its WAL recovered on open.
            self._db = sqlite3.connect(self.path, timeout=30.0)
            tables = self._tables()
        except sqlite3.DatabaseError as error:
            # A file cut short (a crash, a full disk) has fewer pages than its header says and
            # SQLite refuses it; with writable_schema it reads the pages that are there. Nothing
            # is written: the reader never modifies the log.
            self.damaged = str(error)
            try:
                self._db.execute("PRAGMA writable_schema=ON")
                tables = self._tables()
            except sqlite3.DatabaseError:
                self._db.close()
                raise LogError(f"{self.path}: not a twin session log ({error})") from None
        if not {"meta", "messages"} <= tables:
            self._db.close()
            raise LogError(f"{self.path}: not a twin session log (no meta/messages tables)")
        self.skipped = 0

    def _tables(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT name FROM sqlite_master")}

    def __enter__(self) -> LogReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def meta(self) -> dict[str, Any]:
        """The session's metadata: id, created, schema_version, config, mission, ..."""
        meta: dict[str, Any] = {}
        for key, value in self._db.execute("SELECT key, value FROM meta"):
            try:
                meta[key] = json.loads(value)
            except json.JSONDecodeError:
                meta[key] = value
        return meta

    def count(self, types: Iterable[str] | None = None) -> int:
        where, args = self._where(types=types)
        row = self._db.execute(f"SELECT COUNT(*) FROM messages {where}", args).fetchone()
        return int(row[0])

    def records(
        self,
        *,
        types: Iterable[str] | None = None,
        turn: int | None = None,
        source: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after_id: int = 0,
        limit: int | None = None,
    ) -> Iterator[LogRecord]:
        """Rows in log order, each decoded through the message registry."""
        where, args = self._where(
            types=types, turn=turn, source=source, since=since, until=until, after_id=after_id
        )
        sql = f"SELECT id, t, type, turn, source, seq, data FROM messages {where} ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        for row_id, t, kind, row_turn, row_source, seq, data in self._db.execute(sql, args):
            try:
                if not isinstance(data, bytes):  # a damaged row (its page lost in a crash)
                    raise MessageError(f"no message data ({type(data).__name__})")
                message: Message | None = decode(data)
                error = None
            except MessageError as problem:
                message, error = None, str(problem)
                self.skipped += 1
            yield LogRecord(row_id, t, kind, row_turn, row_source, seq, message, error)

    def messages(self, **filters: Any) -> Iterator[Message]:
        """Decoded messages in log order; undecodable rows are skipped and counted."""
        for record in self.records(**filters):
            if record.message is not None:
                yield record.message

    @staticmethod
    def _where(
        *,
        types: Iterable[str] | None = None,
        turn: int | None = None,
        source: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after_id: int = 0,
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        if types is not None:
            wanted = list(types)
            clauses.append(f"type IN ({','.join('?' * len(wanted))})")
            args.extend(wanted)
        for column, value, op in (
            ("turn", turn, "="),
            ("source", source, "="),
            ("t", since, ">="),
            ("t", until, "<="),
        ):
            if value is not None:
                clauses.append(f"{column} {op} ?")
                args.append(value)
        if after_id:
            clauses.append("id > ?")
            args.append(after_id)
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", args


def find_log(session: str | Path, log_dir: str | Path = "sessions") -> Path:
    """The log file of ``session``: a path, or a session id (or unique prefix) in ``log_dir``."""
    path = Path(session)
    if path.is_file():
        return path
    directory = Path(log_dir)
    exact = directory / f"{session}.db"
    if exact.is_file():
        return exact
    pattern = f"{glob.escape(str(session))}*.db"
    matches = sorted(directory.glob(pattern)) if directory.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise LogError(f"no session log {str(session)!r} (looked for a file and in {directory}/)")
    names = ", ".join(match.stem for match in matches[:5])
    raise LogError(f"session {str(session)!r} is ambiguous: {names}")
