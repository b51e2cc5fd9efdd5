"""The message bus: publishers deliver each message to the actors subscribed to its type.

Two implementations with the same semantics:

- ``RayBus`` (the default): every actor is a Ray actor; a publisher sends straight to each
  subscriber's actor with a fire-and-forget ``deliver`` call. Messages published in the same
  event-loop tick travel in one batch. At most ``window`` batches per subscriber are in flight; a
  publisher of a non-droppable message waits for room (back-pressure), a droppable one is dropped
  and counted.
- ``LocalBus``: every actor lives in this process (unit tests, ``twin run --local``).

On the receiving side each subscriber has an ``Inbox``: a bounded queue that keeps each
publisher's order (batches are numbered per link and reordered if they arrive out of order),
recognises a delivery it already has (a retried call), and drops only droppable types, oldest
first, counting every drop. A full inbox makes a non-droppable delivery wait, which in turn holds
the publisher back.
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from twin.messages import MESSAGE_TYPES, Message, MessageError, decode, encode, tag_of

if TYPE_CHECKING:
    from twin.config import BusSettings


def routes_for(subscriptions: Mapping[str, Iterable[type[Message]]]) -> dict[str, tuple[str, ...]]:
    """Which subscribers receive each message type: ``{tag: (actor name, ...)}``.

    A subscription to a base class (``Message`` itself for the recorder) covers its subclasses.
    """
    routes: dict[str, tuple[str, ...]] = {}
    for tag, cls in MESSAGE_TYPES.items():
        names = [
            name
            for name, types in subscriptions.items()
            if any(issubclass(cls, subscribed) for subscribed in types)
        ]
        if names:
            routes[tag] = tuple(names)
    return routes


# ---------------------------------------------------------------------------- receiving side


@dataclass
class InboxStats:
    queued: int = 0
    delivered: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    malformed: int = 0
    max_depth: int = 0
    accepted: int = 0  # messages queued since the start, all told


class Inbox:
    """A subscriber's bounded queue of messages, in each publisher's order."""

    def __init__(self, capacity: int, *, drop_when_full: bool = True) -> None:
        self.capacity = capacity
        self.drop_when_full = drop_when_full
        self.stats = InboxStats()
        self._queue: collections.deque[Message] = collections.deque()
        self._expected: dict[str, int] = {}  # next batch number per publisher link
        self._pending: dict[str, dict[int, Sequence[Message]]] = {}
        self._accept_any_first = False
        self._unordered = False
        self._seen: dict[str, set[int]] = {}  # unordered: the batches taken, per publisher
        self._order = asyncio.Lock()
        self._changed = asyncio.Condition()

    def resync(self, *, unordered: bool = False) -> None:
        """After a restart: take each publisher's next batch as the start of its sequence; or
        (``unordered``, for a subscriber that must lose nothing: the recorder) take every batch
        as it comes, the ones sent again after the restart too, each once."""
        self._accept_any_first = True
        self._unordered = self._unordered or unordered

    async def put(self, sender: str, batch_no: int, messages: Sequence[Message]) -> None:
        """Add one numbered batch from ``sender``; returns once it is queued (or dropped)."""
        async with self._order:
            if self._unordered:
                seen = self._seen.setdefault(sender, set())
                if batch_no in seen:
                    self.stats.duplicates += 1
                    return
                seen.add(batch_no)
                for message in messages:
                    await self._append(message)
                return
            expected = self._expected.get(sender)
            if expected is None:
                expected = batch_no if self._accept_any_first else 0
            if batch_no < expected or batch_no in self._pending.get(sender, {}):
                self.stats.duplicates += 1
                return
            pending = self._pending.setdefault(sender, {})
            pending[batch_no] = messages
            while expected in pending:
                for message in pending.pop(expected):
                    await self._append(message)
                expected += 1
            self._expected[sender] = expected

    def put_encoded(self, sender: str, batch_no: int, batch: Sequence[bytes]) -> Any:
        """``put`` for a batch of msgpack payloads; a malformed payload is counted and skipped."""
        messages = []
        for data in batch:
            try:
                messages.append(decode(data))
            except MessageError:
                self.stats.malformed += 1
        return self.put(sender, batch_no, messages)

    async def _append(self, message: Message) -> None:
        async with self._changed:
            if len(self._queue) >= self.capacity:
                if message.droppable and self.drop_when_full:
                    victim = self._oldest_droppable() or message
                    tag = tag_of(type(victim))
                    self.stats.dropped[tag] = self.stats.dropped.get(tag, 0) + 1
                    if victim is message:
                        return
                    self._queue.remove(victim)
                else:
                    await self._changed.wait_for(lambda: len(self._queue) < self.capacity)
            self._queue.append(message)
            self.stats.accepted += 1
            self.stats.max_depth = max(self.stats.max_depth, len(self._queue))
            self._changed.notify_all()

    def _oldest_droppable(self) -> Message | None:
        return next((queued for queued in self._queue if queued.droppable), None)

    async def get(self) -> Message:
        """The next message, waiting for one."""
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._queue))
            message = self._queue.popleft()
            self.stats.delivered += 1
            self._changed.notify_all()
            return message

    def __len__(self) -> int:
        return len(self._queue)

    def snapshot(self) -> dict[str, Any]:
        self.stats.queued = len(self._queue)
        return {
            "queued": self.stats.queued,
            "delivered": self.stats.delivered,
            "dropped": dict(self.stats.dropped),
            "duplicates": self.stats.duplicates,
            "malformed": self.stats.malformed,
            "max_depth": self.stats.max_depth,
        }


class Subscriber(Protocol):
    """What a bus needs of a subscriber living in this process."""

    name: str
    inbox: Inbox


# ---------------------------------------------------------------------------- publishing side


@dataclass
class PublisherStats:
    published: int = 0
    batches: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    dead_subscribers: list[str] = field(default_factory=list)

    def drop(self, tag: str) -> None:
        self.dropped[tag] = self.dropped.get(tag, 0) + 1


class Bus(ABC):
    """Delivers each published message to every subscriber of its type."""

    def __init__(self) -> None:
        self.stats = PublisherStats()

    @abstractmethod
    async def publish(self, message: Message) -> None:
        """Send an already stamped message; may wait if a subscriber is full."""

    @abstractmethod
    async def flush(self) -> None:
        """Wait until everything published so far has reached its subscribers' inboxes."""

    def snapshot(self) -> dict[str, Any]:
        return {
            "published": self.stats.published,
            "batches": self.stats.batches,
            "dropped": dict(self.stats.dropped),
            "dead_subscribers": list(self.stats.dead_subscribers),
        }


class LocalBus(Bus):
    """All subscribers in this process; delivery is a direct put into their inboxes."""

    def __init__(self) -> None:
        super().__init__()
        self._subscribers: dict[str, Subscriber] = {}
        self._subscriptions: dict[str, tuple[type[Message], ...]] = {}
        self._routes: dict[str, tuple[str, ...]] = {}
        self._batch_no: dict[tuple[str, str], int] = {}

    def subscribe(self, subscriber: Subscriber, types: Iterable[type[Message]]) -> None:
        self._subscribers[subscriber.name] = subscriber
        self._subscriptions[subscriber.name] = tuple(types)
        self._routes = routes_for(self._subscriptions)

    def unsubscribe(self, name: str) -> None:
        self._subscribers.pop(name, None)
        self._subscriptions.pop(name, None)
        self._routes = routes_for(self._subscriptions)

    async def publish(self, message: Message) -> None:
        self.stats.published += 1
        for name in self._routes.get(tag_of(type(message)), ()):
            link = (message.source, name)
            batch_no = self._batch_no.get(link, 0)
            self._batch_no[link] = batch_no + 1
            self.stats.batches += 1
            await self._subscribers[name].inbox.put(message.source, batch_no, (message,))

    async def flush(self) -> None:
        return None  # delivery is synchronous with publish


@dataclass
class _Link:
    """One publisher → one subscriber over Ray."""

    subscriber: str
    outbox: list[bytes] = field(default_factory=list)
    batch_no: int = 0
    inflight: collections.deque[Any] = field(default_factory=collections.deque)
    handle: Any = None
    dead: bool = False


class RayBus(Bus):
    """Publishes from this process straight to the subscribed Ray actors (named, looked up lazily).

    A copy of the bus travels to each actor with its constructor arguments; each copy is a
    separate publisher with its own identity, so a restarted actor starts a new, distinct
    sequence of batches.
    """

    def __init__(
        self,
        routes: Mapping[str, Sequence[str]],
        actor_names: Mapping[str, str],
        *,
        namespace: str,
        settings: BusSettings,
        lossless: Iterable[str] = (),
    ) -> None:
        super().__init__()
        self.lossless = frozenset(lossless)  # subscribers that never drop (the recorder)
        self.routes = {tag: tuple(names) for tag, names in routes.items()}
        self.actor_names = dict(actor_names)  # bus name -> Ray actor name
        self.namespace = namespace
        self.window = settings.window
        self.max_batch = settings.max_batch
        self._settings = settings
        self._identity = f"publisher-{uuid.uuid4().hex[:12]}"  # this copy's batch sequence
        self._links: dict[str, _Link] = {}
        self._flush_scheduled = False

    def __reduce__(self) -> tuple[Any, ...]:
        # Travel as configuration only: links, handles and counters are per process.
        return (
            _rebuild_ray_bus,
            (self.routes, self.actor_names, self.namespace, self._settings, self.lossless),
        )

    def _link(self, name: str) -> _Link:
        link = self._links.get(name)
        if link is None:
            link = self._links[name] = _Link(subscriber=name)
        return link

    async def publish(self, message: Message) -> None:
        self.stats.published += 1
        tag = tag_of(type(message))
        names = self.routes.get(tag, ())
        if not names:
            return
        data = encode(message)
        for name in names:
            link = self._link(name)
            if link.dead:
                continue
            if len(link.inflight) >= self.window:
                self._reap(link)
                if len(link.inflight) >= self.window:
                    if message.droppable and name not in self.lossless:
                        self.stats.drop(tag)
                        continue
                    await self._make_room(link)
                    if link.dead:
                        continue
            link.outbox.append(data)
            if len(link.outbox) >= self.max_batch:
                self._send(link)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._send_all)

    def _send_all(self) -> None:
        self._flush_scheduled = False
        for link in self._links.values():
            if link.outbox and not link.dead:
                self._send(link)

    def _send(self, link: _Link) -> None:
        if link.handle is None:
            import ray

            try:
                link.handle = ray.get_actor(self.actor_names[link.subscriber], self.namespace)
            except ValueError:  # no such actor: it was given up (degraded), or never started
                self._mark_dead(link)  # gone from the routes, once, not an error per message
                return
        batch, link.outbox = link.outbox, []
        link.inflight.append(link.handle.deliver.remote(self._identity, link.batch_no, batch))
        link.batch_no += 1
        self.stats.batches += 1

    def _reap(self, link: _Link) -> None:
        """Forget deliveries that have completed.

        Not awaited one by one: that costs a loop turn each and shows in the p99 latency. A
        dead subscriber is noticed where deliveries are awaited (``_make_room``, ``flush``).
        """
        import ray

        ready, _ = ray.wait(list(link.inflight), num_returns=len(link.inflight), timeout=0)
        if ready:
            done = set(ready)
            link.inflight = collections.deque(ref for ref in link.inflight if ref not in done)

    async def _make_room(self, link: _Link) -> None:
        import ray

        while len(link.inflight) >= self.window and not link.dead:
            try:
                await link.inflight.popleft()
            except ray.exceptions.RayActorError:
                self._mark_dead(link)

    def _mark_dead(self, link: _Link) -> None:
        link.dead = True
        link.inflight.clear()
        link.outbox.clear()
        self.stats.dead_subscribers.append(link.subscriber)

    async def flush(self) -> None:
        import ray

        for link in self._links.values():
            if link.outbox and not link.dead:
                self._send(link)
            while link.inflight:
                try:
                    await link.inflight.popleft()
                except ray.exceptions.RayActorError:
                    self._mark_dead(link)


def _rebuild_ray_bus(
    routes: Mapping[str, Sequence[str]],
    actor_names: Mapping[str, str],
    namespace: str,
    settings: BusSettings,
    lossless: Iterable[str],
) -> RayBus:
    return RayBus(routes, actor_names, namespace=namespace, settings=settings, lossless=lossless)
