"""Recorder: writes every bus message into the session log.

It subscribes to every message type and never drops (its inbox is lossless). Messages are
committed in small batches — every ``commit_interval_ms`` or ``commit_max_messages``, whichever
comes first — on a worker thread, so the actor keeps taking deliveries while SQLite syncs. A
batch is *acknowledged* when its transaction has committed: ``health()["committed"]`` counts them,
and a session killed at any moment leaves all of them readable. A delivery over Ray returns only
then, so a recorder killed with messages not yet written is sent them again when Ray has
started it anew (its inbox then takes every batch as it comes; the log keeps each message once).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from twin.actor import Actor, ActorFailed
from twin.log import SessionLog
from twin.messages import Message


class RecorderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    commit_interval_ms: int = Field(20, ge=1)
    commit_max_messages: int = Field(200, ge=1)


class Recorder(Actor):
    """Every message on the bus, into the session log."""

    subscribes: ClassVar[tuple[type[Message], ...]] = (Message,)
    Settings: ClassVar[type[BaseModel]] = RecorderSettings

    lossless: ClassVar[bool] = True  # the log is the truth: never drop
    start_phase: ClassVar[int] = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._log: SessionLog | None = None
        self._pending: list[Message] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._stopping = False
        self.committed = 0
        self.batches = 0
        self._written = asyncio.Condition()  # notified when messages are committed

    async def on_start(self) -> None:
        settings = self.settings
        assert isinstance(settings, RecorderSettings)
        if self.session.log_path is None:
            raise ActorFailed("the recorder needs a session log path")
        self._log = await asyncio.to_thread(SessionLog, self.session.log_path)
        self._interval = settings.commit_interval_ms / 1000
        self._max = settings.commit_max_messages
        self._writer = asyncio.create_task(self._write_loop(), name="recorder-writer")

    async def deliver(self, sender: str, batch_no: int, batch: Sequence[bytes]) -> None:
        """Acknowledged once its messages are on disk: a batch the recorder dies with is never
        acknowledged, so Ray delivers it again to the restarted recorder (and the log keeps a
        message it already holds once)."""
        await super().deliver(sender, batch_no, batch)
        mark = self.inbox.stats.accepted  # the inbox is in order: all up to here are this
        async with self._written:         # batch and those before it
            await self._written.wait_for(lambda: self.committed >= mark)

    async def on_message(self, message: Message) -> None:
        self._pending.append(message)
        if len(self._pending) >= self._max:
            self._wake.set()

    async def _write_loop(self) -> None:
        try:
            while not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._interval)
                self._wake.clear()
                await self._commit()
        except Exception as error:  # a log that cannot be written ends the session
            await self.fail(error)

    async def _commit(self) -> None:
        if not self._pending or self._log is None:
            return
        batch, self._pending = self._pending, []
        await asyncio.to_thread(self._log.append, batch)
        self.committed += len(batch)
        self.batches += 1
        async with self._written:
            self._written.notify_all()

    async def on_stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._writer is not None:
            await self._writer  # finishes its current commit, then leaves
        await self._commit()
        if self._log is not None:
            self._log.close()
            self._log = None

    def on_health(self) -> dict[str, Any]:
        return {"committed": self.committed, "batches": self.batches, "pending": len(self._pending)}
