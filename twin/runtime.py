"""Builds a session from a config and a mission, places its actors and supervises them.

``Session.run()`` does, in order:

1. creates the session log with the config and the mission stored beside the messages;
2. places every enabled actor of the config — on Ray with ``ray.remote(cls).options(...)``
   (the default; a local Ray is started unless the config names a cluster address, with a
   ``twin.reaper`` to take its processes down if this one is killed), or all in
   this process on a ``LocalBus`` (``local=True``, for debugging);
3. starts them (the recorder first) and supervises: follows the log (the truth) to show the
   session and to see the mission end; polls each actor's health; applies the actor's failure
   policy — ``restart`` (Ray restarts the process, the actor recovers from the log), ``degrade``
   (the session carries on without it) or ``end`` — and records every decision as an
   ``ActorError`` from ``runtime``;
4. stops the actors (the recorder last, once everything has reached it; one not stopped within
   its grace period, ``stop_timeout_s``, is killed with one line saying so) and returns where
   the log is.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import msgspec
from pydantic import BaseModel, ValidationError

from twin import reaper
from twin.actor import Actor, SessionInfo
from twin.bus import Bus, LocalBus, RayBus, routes_for
from twin.config import ActorSpec, ConfigError, Mission, TwinConfig
from twin.log import LogReader, SessionLog
from twin.messages import ActorError, Message, MissionEvent, TrainerControl

log = logging.getLogger(__name__)

RUNTIME = "runtime"
HEALTH_INTERVAL_S = 1.0
CALL_TIMEOUT_S = 30.0


class SessionError(RuntimeError):
    """A session that cannot start or had to end."""


@dataclass(frozen=True)
class PlannedActor:
    """An actor of the config, its class imported and its settings validated."""

    name: str
    cls: type[Actor]
    settings: BaseModel
    spec: ActorSpec


def plan_actors(config: TwinConfig, source: str | Path = "<config>") -> list[PlannedActor]:
    """Import each enabled actor's class and validate its settings; errors name the field."""
    planned: list[PlannedActor] = []
    problems: list[tuple[str, str]] = []
    for name, spec in config.actors.items():
        if not spec.enabled:
            continue
        where = f"actors.{name}"
        module_name, _, class_name = spec.class_path.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as error:
            problems.append((f"{where}.class", f"cannot import {spec.class_path}: {error}"))
            continue
        if not (isinstance(cls, type) and issubclass(cls, Actor)):
            problems.append((f"{where}.class", f"{spec.class_path} is not a twin Actor"))
            continue
        try:
            settings = cls.Settings.model_validate(spec.settings)
        except ValidationError as error:
            for detail in error.errors():
                location = ".".join(str(part) for part in detail["loc"])
                problems.append((f"{where}.settings.{location}", detail["msg"]))
            continue
        planned.append(PlannedActor(name, cls, settings, spec))
    if problems:
        raise ConfigError(Path(source), problems)
    return planned


def new_session_id(mission: str) -> str:
    return f"{mission}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


# ---------------------------------------------------------------------------- placement


class Placed(Protocol):
    """A placed actor, wherever it runs."""

    name: str
    spec: ActorSpec

    async def call(self, method: str, *args: Any) -> Any: ...

    def restart(self) -> None: ...

    def kill(self) -> None: ...


class ActorGone(RuntimeError):
    """The actor is dead for good (restarts used up, or killed)."""


class LocalPlaced:
    """An actor living in this process; a restart builds a fresh instance."""

    def __init__(self, plan: PlannedActor, session: SessionInfo, bus: LocalBus) -> None:
        self.name = plan.name
        self.spec = plan.spec
        self._plan = plan
        self._session = session
        self._bus = bus
        self.actor = self._build()
        self.dead = False

    def _build(self) -> Actor:
        actor = self._plan.cls(
            self._plan.settings,
            name=self.name,
            session=self._session,
            inbox_capacity=self.spec.inbox_capacity or 256,
            drop_when_full=self.spec.drop_when_full,
        )
        actor.attach(self._bus)
        return actor

    async def call(self, method: str, *args: Any) -> Any:
        if self.dead:
            raise ActorGone(self.name)
        result = getattr(self.actor, method)(*args)
        return await result if asyncio.iscoroutine(result) else result

    def restart(self) -> None:
        self._bus.unsubscribe(self.name)
        self.actor = self._build()

    def kill(self) -> None:
        self.dead = True
        self._bus.unsubscribe(self.name)


class RayPlaced:
    """An actor placed on Ray as ``ray.remote(cls).options(...)``."""

    def __init__(self, plan: PlannedActor, session: SessionInfo, bus: RayBus, ray_name: str,
                 namespace: str, inbox_capacity: int) -> None:
        import ray

        self.name = plan.name
        self.spec = plan.spec
        options: dict[str, Any] = {
            "name": ray_name,
            "namespace": namespace,
            "num_cpus": plan.spec.num_cpus,
            "max_restarts": plan.spec.max_restarts,
            "max_task_retries": -1 if plan.spec.max_restarts else 0,
            "max_concurrency": 1000,
        }
        if plan.spec.resources:
            options["resources"] = dict(plan.spec.resources)
        self.handle: Any = ray.remote(plan.cls).options(**options).remote(
            plan.settings,
            name=plan.name,
            session=session,
            bus=bus,
            inbox_capacity=plan.spec.inbox_capacity or inbox_capacity,
            drop_when_full=plan.spec.drop_when_full,
        )

    async def call(self, method: str, *args: Any) -> Any:
        import ray

        try:
            return await getattr(self.handle, method).remote(*args)
        except ray.exceptions.RayActorError as error:
            raise ActorGone(f"{self.name}: {error}") from None

    def restart(self) -> None:
        import ray

        ray.kill(self.handle, no_restart=False)

    def kill(self) -> None:
        import ray

        ray.kill(self.handle, no_restart=True)


# ---------------------------------------------------------------------------- session


@dataclass
class ActorWatch:
    """What the supervisor knows of one actor."""

    plan: PlannedActor
    placed: Placed
    incarnation: str | None = None
    restarts: int = 0
    state: str = "running"  # running | degraded; at the end: gone | killed


@dataclass
class SessionResult:
    session_id: str
    log_path: Path
    reason: str
    messages: int
    degraded: list[str] = field(default_factory=list)


class Session:
    """One run of a mission with the config's actors."""

    def __init__(
        self,
        config: TwinConfig,
        mission: Mission,
        *,
        local: bool = False,
        mode: str = "training",
        speed: float = 1.0,
        session_id: str | None = None,
        on_message: Callable[[Message], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
        on_links: Callable[[str, dict[str, str]], None] | None = None,
        config_source: str | Path = "<config>",
    ) -> None:
        if speed <= 0:
            raise SessionError(f"speed must be > 0, got {speed}")
        self.config = config
        self.mission = mission
        self.local = local
        self.plan = plan_actors(config, config_source)
        self.id = session_id or new_session_id(mission.name)
        self.log_path = (Path(config.session.log_dir) / f"{self.id}.db").resolve()
        self.info = SessionInfo(
            id=self.id, log_path=self.log_path, mission=mission, mode=mode, speed=speed,
            secret=secrets.token_urlsafe(24),  # not in the log: actors derive credentials
        )
        self.on_message = on_message or (lambda message: None)
        self.on_notice = on_notice or (lambda text: log.warning("%s", text))
        # An actor whose health has "links" (the avatar gateway: one page link per role)
        self.on_links = on_links or (lambda name, links: None)
        self.links: dict[str, dict[str, str]] = {}
        self.watches: dict[str, ActorWatch] = {}
        self.bus: Bus | None = None
        self._seq = 0
        self._end_reason: str | None = None
        self._ended = asyncio.Event()
        self._started_ray = False
        self._reaper: subprocess.Popen[bytes] | None = None
        self._last_id = 0
        self._ending: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------ public

    async def run(self, *, timeout: float | None = None) -> SessionResult:
        """Run the session until the mission ends, ``stop`` is called, or ``timeout``."""
        SessionLog.create(
            self.log_path,
            {
                "session": self.id,
                "mission_name": self.mission.name,
                "mode": self.info.mode,
                "speed": self.info.speed,
                "placement": "local" if self.local else "ray",
                "config": self.config.model_dump(mode="json", by_alias=True),
                "mission": self.mission.model_dump(mode="json"),
            },
        ).close()
        reader = LogReader(self.log_path)
        try:
            self._place()
            await self._start_all()
            await self._supervise(reader, timeout)
        finally:
            with contextlib.suppress(Exception):
                await self._stop_all()
            self._follow(reader)
            count = reader.count()
            reader.close()
            self._shutdown()
        degraded = [name for name, watch in self.watches.items() if watch.state == "degraded"]
        return SessionResult(self.id, self.log_path, self._end_reason or "stopped", count, degraded)

    async def publish(self, message: Message) -> None:
        """Publish from the runtime itself (trainer commands, supervision decisions)."""
        assert self.bus is not None
        stamped = msgspec.structs.replace(
            message, session=self.id, source=RUNTIME, seq=self._seq, t=time.time()
        )
        self._seq += 1
        await self.bus.publish(stamped)

    def stop(self, reason: str) -> None:
        """End the session now (the mission director, if any, records the end first)."""
        if self._end_reason is None:
            self._end_reason = reason
        self._ended.set()

    async def request_end(self, reason: str) -> None:
        """Ask the mission to end (as a trainer would); the session stops when it has."""
        await self.publish(TrainerControl(command="end", argument=reason))
        steered = any(
            TrainerControl in p.cls.subscribes and Message not in p.cls.subscribes
            for p in self.plan
        )
        if not steered:  # no mission clock to record the end: stop now
            self.stop(reason)

    # ------------------------------------------------------------------ placing and starting

    def _place(self) -> None:
        routes = routes_for({p.name: p.cls.subscribes for p in self.plan})
        if self.local:
            local_bus = LocalBus()
            self.bus = local_bus
            for plan in self.plan:
                self.watches[plan.name] = ActorWatch(plan, LocalPlaced(plan, self.info, local_bus))
            return
        import ray

        settings = self.config.ray
        if not ray.is_initialized():
            if settings.address:
                ray.init(address=settings.address, namespace=settings.namespace,
                         logging_level=logging.WARNING)
            else:
                # Ray leaves some of its processes running when this one is killed: a reaper
                # in a session of its own takes them down (twin.reaper)
                self._reaper = reaper.start()
                ray.init(
                    num_cpus=settings.num_cpus,
                    include_dashboard=settings.include_dashboard,
                    object_store_memory=settings.object_store_memory_mb * 2**20,
                    namespace=settings.namespace,
                    logging_level=logging.WARNING,
                )
            self._started_ray = True
        ray_names = {plan.name: f"{self.id}/{plan.name}" for plan in self.plan}
        lossless = [p.name for p in self.plan if p.cls.lossless or not p.spec.drop_when_full]
        ray_bus = RayBus(routes, ray_names, namespace=settings.namespace,
                         settings=self.config.bus, lossless=lossless)
        self.bus = ray_bus
        for plan in self.plan:
            placed = RayPlaced(plan, self.info, ray_bus, ray_names[plan.name],
                               settings.namespace, self.config.bus.inbox_capacity)
            self.watches[plan.name] = ActorWatch(plan, placed)

    async def _start_all(self) -> None:
        # By start phase: the recorder first, so that it takes messages before anyone
        # publishes; the mission clock last; the rest (loading their models) side by side.
        for phase in sorted({w.plan.cls.start_phase for w in self.watches.values()}):
            watches = [w for w in self.watches.values() if w.plan.cls.start_phase == phase]
            await asyncio.gather(*(self._start_one(watch) for watch in watches))

    async def _start_one(self, watch: ActorWatch) -> None:
        health = await self._call(watch, "start")
        if health is None:
            return
        watch.incarnation = health["incarnation"]
        if health.get("failed"):
            await self._apply_policy(watch, f"failed to start: {health['failed']}")
        elif health.get("links"):
            self.links[watch.placed.name] = dict(health["links"])
            self.on_links(watch.placed.name, self.links[watch.placed.name])

    # ------------------------------------------------------------------ supervising

    async def _supervise(self, reader: LogReader, timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        next_health = loop.time() + HEALTH_INTERVAL_S
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, self._on_interrupt)
        try:
            while not self._ended.is_set():
                self._follow(reader)
                if deadline is not None and loop.time() > deadline:
                    self.stop(f"timed out after {timeout:g} s")
                    break
                if loop.time() >= next_health:
                    await self._check_health()
                    next_health = loop.time() + HEALTH_INTERVAL_S
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ended.wait(), 0.1)
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)

    def _on_interrupt(self) -> None:
        if self._end_reason is not None or self._ended.is_set():
            return
        self.on_notice("stopping: ending the mission (Ctrl-C again to force)")
        self._end_reason = "stopped from the terminal"
        asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
        self._ending = asyncio.ensure_future(self.request_end("stopped from the terminal"))

    def _follow(self, reader: LogReader) -> None:
        """Show what the recorder has committed since last time; notice the mission's end."""
        for record in reader.records(after_id=self._last_id):
            self._last_id = record.id
            if record.message is None:
                continue
            self.on_message(record.message)
            message = record.message
            if isinstance(message, MissionEvent) and message.kind == "mission_ended":
                self.stop(self._end_reason or f"mission ended: {message.text}")

    async def _check_health(self) -> None:
        for watch in list(self.watches.values()):
            if watch.state != "running":
                continue
            try:
                health = await asyncio.wait_for(watch.placed.call("health"), 5.0)
            except TimeoutError:
                continue  # busy or being restarted by Ray: look again next round
            except ActorGone as gone:
                await self._apply_policy(watch, f"died: {gone}", restartable=False)
                continue
            if health.get("failed"):
                await self._apply_policy(watch, str(health["failed"]))
            elif health["incarnation"] != watch.incarnation and not health["started"]:
                watch.restarts += 1
                self.on_notice(f"actor {watch.placed.name} was restarted; recovering from the log")
                await self.publish(ActorError(actor=watch.placed.name, error="process restarted",
                                              recoverable=True, action="restart"))
                started = await self._call(watch, "start", True)
                if started is not None:
                    watch.incarnation = started["incarnation"]

    async def _apply_policy(self, watch: ActorWatch, problem: str, *,
                            restartable: bool = True) -> None:
        name, spec = watch.placed.name, watch.placed.spec
        policy = spec.on_failure
        budget = spec.max_restarts
        action: Literal["restart", "degrade", "end"]
        if policy == "restart" and restartable and (budget < 0 or watch.restarts < budget):
            action = "restart"
        elif policy == "end" or _records_everything(watch):
            action = "end"  # without the recorder nothing is kept: never carry on
        else:
            action = "degrade"
        self.on_notice(f"actor {name} {problem}; "
                       + {"restart": "restarting it", "degrade": f"continuing without {name}",
                          "end": "ending the session"}[action])
        if action != "end" or not _records_everything(watch):
            with contextlib.suppress(Exception):
                await self.publish(ActorError(actor=name, error=problem,
                                              recoverable=action != "end", action=action))
        if action == "restart":
            watch.placed.restart()
            if self.local:  # a local restart is immediate: start the new instance now
                watch.restarts += 1
                started = await self._call(watch, "start", True)
                watch.incarnation = started["incarnation"] if started else None
        elif action == "degrade":
            watch.state = "degraded"
            with contextlib.suppress(Exception):
                watch.placed.kill()
        else:
            watch.state = "degraded"
            self.stop(f"actor {name} {problem}")

    async def _call(self, watch: ActorWatch, method: str, *args: Any) -> Any:
        limit = watch.plan.spec.start_timeout_s if method == "start" else CALL_TIMEOUT_S
        try:
            return await asyncio.wait_for(watch.placed.call(method, *args), limit)
        except TimeoutError:
            await self._apply_policy(watch, f"did not answer {method} within {limit:g} s")
            return None
        except ActorGone as error:
            await self._apply_policy(watch, f"did not answer {method}: {error}",
                                     restartable=False)
            return None

    # ------------------------------------------------------------------ stopping

    async def _stop_all(self) -> None:
        running = [w for w in self.watches.values() if w.state == "running"]
        others = [w for w in running if not _records_everything(w)]
        await asyncio.gather(*(self._stop_one(w) for w in others))
        if self.bus is not None:
            await self.bus.flush()
        for watch in running:
            if _records_everything(watch):
                await self._stop_one(watch)

    async def _stop_one(self, watch: ActorWatch) -> None:
        """Stop one actor, or kill it when its grace period (``stop_timeout_s``) is over, with
        one line saying so. Half the grace is for handling what its inbox still holds."""
        name, grace = watch.placed.name, watch.placed.spec.stop_timeout_s
        stopping = asyncio.ensure_future(watch.placed.call("stop", grace / 2))
        done, _ = await asyncio.wait({stopping}, timeout=grace)
        if not done:
            stopping.cancel()  # not awaited: a stuck stop may not end even when cancelled
            problem = f"did not stop within {grace:g} s"
        elif isinstance(stopping.exception(), ActorGone):
            watch.state = "gone"
            self.on_notice(f"actor {name} was gone when the session ended")
            return
        elif stopping.exception() is not None:
            problem = f"failed to stop ({stopping.exception()!r})"
        else:
            return
        with contextlib.suppress(Exception):
            watch.placed.kill()
        watch.state = "killed"
        self.on_notice(f"actor {name} {problem}; killed it")

    def _shutdown(self) -> None:
        if self.local:
            return
        import ray

        for watch in self.watches.values():
            with contextlib.suppress(Exception):
                watch.placed.kill()
        if self._started_ray:
            ray.shutdown()


def _records_everything(watch: ActorWatch) -> bool:
    """The recorder (whatever its class) is the actor that subscribes to every message."""
    return Message in watch.plan.cls.subscribes
