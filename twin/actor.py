"""The actor base class: a plain async class that receives and publishes bus messages.

An actor subclass declares what it listens to and implements a few hooks::

    class Echo(Actor):
        subscribes = (Transcript,)

        async def on_message(self, message: Message) -> None:
            await self.publish(TwinUtterance(text=message.text, index=0, final=True))

The same class runs in a unit test on a ``LocalBus`` (``bus.subscribe`` via ``attach``) and, placed
by the runtime with ``ray.remote(cls).options(...)``, as a Ray actor on a ``RayBus``. Messages enter
through ``deliver`` (Ray) or the inbox (local) and reach ``on_message`` one at a time, in each
publisher's order. ``publish`` stamps the envelope (session, source, seq, t).

An exception in a hook does not kill the actor: it publishes ``ActorError`` and carries on. An
actor that cannot carry on raises ``ActorFailed``; it then reports itself failed in ``health`` and
the runtime applies the configured policy (restart, degrade or end). After Ray restarts an actor,
the runtime calls ``start(recovering=True)`` and ``recover`` receives what the actor had published
before, read back from the session log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
import traceback
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
from pydantic import BaseModel, ConfigDict

from twin.bus import Bus, Inbox, LocalBus
from twin.messages import ActorError, Message

if TYPE_CHECKING:
    from twin.config import Mission

log = logging.getLogger(__name__)


class NoSettings(BaseModel):
    """Settings of an actor that has none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ActorFailed(RuntimeError):
    """Raised by an actor that cannot carry on; the runtime's policy decides what happens next."""


@dataclass(frozen=True)
class SessionInfo:
    """What every actor of a session knows about it."""

    id: str = "local"
    log_path: Path | None = None
    mission: Mission | None = None
    mode: str = "training"
    speed: float = 1.0
    # Made fresh by the runtime for each session and never written to the log: actors derive
    # per-session credentials from it (the avatar gateway's role tokens).
    secret: str = field(default="", repr=False)


class Actor:
    """Base class of every twin actor. Subclasses override the ``on_*`` hooks."""

    subscribes: ClassVar[tuple[type[Message], ...]] = ()
    Settings: ClassVar[type[BaseModel]] = NoSettings
    lossless: ClassVar[bool] = False  # never drop, not even droppable types (the recorder)
    # Start order: 0 before everyone (the recorder), 2 after everyone is ready (the mission
    # clock, so that no inject fires while models still load); 1 for the rest, concurrently.
    start_phase: ClassVar[int] = 1

    def __init__(
        self,
        settings: BaseModel | Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        session: SessionInfo | None = None,
        bus: Bus | None = None,
        inbox_capacity: int = 256,
        drop_when_full: bool = True,
    ) -> None:
        if settings is None or isinstance(settings, Mapping):
            settings = self.Settings.model_validate(dict(settings or {}))
        self.settings = settings
        self.name = name or type(self).__name__.lower()
        self.session = session or SessionInfo()
        self.bus: Bus | None = bus
        self.inbox = Inbox(inbox_capacity, drop_when_full=drop_when_full and not self.lossless)
        if _restarted_by_ray():
            # Ray redelivers to the new process at once, mid-sequence and before the supervisor
            # calls start(recovering=True): the batches before were lost with the old process,
            # so each publisher's next one starts its sequence here (else all wait for them).
            self.inbox.resync(unordered=self.lossless)
        self.started = False
        self.failed: str | None = None
        self.handled = 0
        self.errors = 0
        self._seq = 0
        self._loop_task: asyncio.Task[None] | None = None
        self._busy = False  # on_message is running
        self._incarnation = f"{os.getpid()}-{time.monotonic_ns()}"

    @classmethod
    def required_models(cls, settings: BaseModel) -> tuple[str, ...]:
        """Names in ``twin.models.REGISTRY`` this actor needs with these settings (fetched by
        ``twin models fetch --config``)."""
        return ()

    # ------------------------------------------------------------------ hooks for subclasses

    async def on_start(self) -> None:
        """Load models, open devices, start background tasks."""

    async def on_message(self, message: Message) -> None:
        """Handle one message of a subscribed type."""

    async def on_stop(self) -> None:
        """Release what ``on_start`` took; publish any last messages."""

    async def recover(self, history: Sequence[Message]) -> None:
        """After a restart: rebuild state from what this actor had published (oldest first)."""

    def on_health(self) -> dict[str, Any]:
        """Extra figures for ``health``."""
        return {}

    # ------------------------------------------------------------------ for subclasses to call

    async def publish(self, message: Message) -> None:
        """Stamp the envelope and send the message to its subscribers."""
        if self.bus is None:
            raise RuntimeError(f"actor {self.name!r} is not attached to a bus")
        stamped = msgspec.structs.replace(
            message, session=self.session.id, source=self.name, seq=self._seq, t=time.time()
        )
        self._seq += 1
        await self.bus.publish(stamped)

    async def report_error(self, error: BaseException, *, recoverable: bool = True) -> None:
        """Publish an ``ActorError`` for ``error`` (never raises)."""
        self.errors += 1
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        log.warning("actor %s: %s", self.name, detail)
        with contextlib.suppress(Exception):
            await self.publish(ActorError(actor=self.name, error=detail, recoverable=recoverable))

    # ------------------------------------------------------------------ called by bus and runtime

    def attach(self, bus: LocalBus) -> None:
        """Join a local bus (tests and ``--local`` runs); the runtime does this for Ray."""
        self.bus = bus
        bus.subscribe(self, self.subscribes)

    async def deliver(self, sender: str, batch_no: int, batch: Sequence[bytes]) -> None:
        """Entry point of a ``RayBus`` delivery: one numbered batch of encoded messages."""
        await self.inbox.put_encoded(sender, batch_no, batch)

    async def start(self, recovering: bool = False) -> dict[str, Any]:
        """Start handling messages; after a restart, first recover from the session log."""
        if self.started:
            return self.health()
        try:
            if recovering:
                self.inbox.resync(unordered=self.lossless)
                history = await asyncio.to_thread(self._own_history)
                if history:
                    self._seq = max(message.seq for message in history) + 1
                await self.recover(history)
            await self.on_start()
        except Exception as error:
            await self.fail(error)
            return self.health()
        self.started = True
        self._loop_task = asyncio.create_task(self._run(), name=f"{self.name}-inbox")
        return self.health()

    async def stop(self, timeout: float = 10.0) -> dict[str, Any]:
        """Handle what is queued, run ``on_stop`` and flush the bus."""
        if self._loop_task is not None:
            deadline = time.monotonic() + timeout
            while (len(self.inbox) or self._busy) and not self._loop_task.done() \
                    and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            self._loop_task.cancel()
            await asyncio.wait({self._loop_task})  # (a cancel of this stop is not swallowed)
            self._loop_task = None
        if self.started:
            try:
                await self.on_stop()
            except Exception as error:
                await self.report_error(error)
        self.started = False
        if self.bus is not None:
            await self.bus.flush()
        return self.health()

    def health(self) -> dict[str, Any]:
        """How this actor is doing: started, failed, counts, queue and bus figures."""
        figures: dict[str, Any] = {
            "name": self.name,
            "incarnation": self._incarnation,
            "started": self.started,
            "failed": self.failed,
            "handled": self.handled,
            "errors": self.errors,
            "inbox": self.inbox.snapshot(),
            "bus": self.bus.snapshot() if self.bus is not None else {},
        }
        try:
            figures.update(self.on_health())
        except Exception as error:  # health must answer even when the actor is broken
            figures["health_error"] = repr(error)
        return figures

    # ------------------------------------------------------------------ internals

    async def _run(self) -> None:
        while True:
            message = await self.inbox.get()
            self._busy = True
            try:
                await self.on_message(message)
            except ActorFailed as error:
                await self.fail(error)
                return
            except Exception as error:
                await self.report_error(error)
            finally:
                self._busy = False
            self.handled += 1

    async def fail(self, error: BaseException) -> None:
        self.failed = str(error) or type(error).__name__
        await self.report_error(error, recoverable=False)

    def _own_history(self) -> list[Message]:
        if self.session.log_path is None or not Path(self.session.log_path).exists():
            return []
        from twin.log import LogReader

        with LogReader(self.session.log_path) as reader:
            return list(reader.messages(source=self.name))


def _restarted_by_ray() -> bool:
    """Whether this is a Ray actor process that Ray started again after its predecessor died."""
    ray = sys.modules.get("ray")  # never imported here: a process without Ray has no restart
    if ray is None:
        return False
    try:
        context = ray.get_runtime_context()
        with warnings.catch_warnings():  # Ray deprecates a call this property makes itself
            warnings.simplefilter("ignore")
            return context.get_actor_id() is not None and bool(
                context.was_current_actor_reconstructed)
    except Exception:  # not inside an actor, or Ray is shutting down
        return False
