"""The local bus, the subscriber inbox and the actor base class: routing, per-publisher order,
back-pressure, dropping (only droppable types, oldest first, counted), reordering, duplicates,
malformed payloads, and an actor's error handling and envelope stamping."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ClassVar, TypeVar

import msgspec
import pytest

from twin.actor import Actor, ActorFailed, SessionInfo
from twin.bus import Inbox, LocalBus, routes_for
from twin.messages import (
    MESSAGE_TYPES,
    ActorError,
    BehaviorObservation,
    Message,
    Metric,
    MissionEvent,
    SpeechEnded,
    SpeechStarted,
    Transcript,
    TwinUtterance,
    encode,
)
from twin.testing import Harness, Probe

pytestmark = pytest.mark.unit

T = TypeVar("T")

# Long enough to be sure a blocked put stays blocked, short enough to keep the suite fast.
BLOCKED = 0.05


def run(coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
    """Run ``coro`` on a fresh event loop; a hang fails the test instead of stalling it."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def eventually(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.001)


async def still_blocked(awaitable: Awaitable[None]) -> asyncio.Task[None]:
    """Start ``awaitable`` as a task and check that it is still waiting a little later."""

    async def wrapped() -> None:
        await awaitable

    task = asyncio.create_task(wrapped())
    await asyncio.sleep(BLOCKED)
    assert not task.done(), "expected the put to wait for room"
    return task


def said(text: str, n: int = 0) -> Transcript:
    """A non-droppable message."""
    return Transcript(text=text, final=True, seq=n)


def metric(n: int) -> Metric:
    """A droppable message."""
    return Metric(name="m", value=float(n), seq=n)


def frame(n: int) -> BehaviorObservation:
    """Another droppable type."""
    return BehaviorObservation(frame_t=float(n), face_present=True, seq=n)


def queued(inbox: Inbox) -> list[Message]:
    """Everything waiting in ``inbox``, in delivery order (drains it)."""

    async def drain() -> list[Message]:
        return [await inbox.get() for _ in range(len(inbox))]

    return run(drain())


# ---------------------------------------------------------------------------- routes


def test_subscription_to_message_receives_every_type() -> None:
    routes = routes_for({"recorder": (Message,)})
    assert routes == {tag: ("recorder",) for tag in MESSAGE_TYPES}


def test_routes_list_only_subscribed_types_in_subscriber_order() -> None:
    routes = routes_for(
        {
            "recorder": (Message,),
            "dialogue": (Transcript, MissionEvent),
            "vad": (SpeechStarted, SpeechEnded),
        }
    )
    assert routes["transcript"] == ("recorder", "dialogue")
    assert routes["mission_event"] == ("recorder", "dialogue")
    assert routes["speech_started"] == ("recorder", "vad")
    assert routes["metric"] == ("recorder",)


def test_no_subscribers_no_routes() -> None:
    assert routes_for({}) == {}
    assert routes_for({"idle": ()}) == {}
    assert routes_for({"words": (Transcript,)}) == {"transcript": ("words",)}


# ---------------------------------------------------------------------------- local bus


def test_local_bus_keeps_each_publishers_order() -> None:
    per_publisher = 2000
    rng = random.Random(7)
    order = ["a"] * per_publisher + ["b"] * per_publisher
    rng.shuffle(order)

    async def scenario() -> Probe:
        bus = LocalBus()
        # A small inbox: the publisher is held back and the order must survive that too.
        probe = Probe(name="probe", inbox_capacity=16)
        probe.attach(bus)
        await probe.start()
        next_seq = {"a": 0, "b": 0}
        for source in order:
            seq = next_seq[source]
            next_seq[source] += 1
            await bus.publish(
                TwinUtterance(text="x", index=seq, final=False, source=source, seq=seq)
            )
        await probe.stop()
        return probe

    probe = run(scenario())
    summary = probe.summary()
    assert summary["count"] == 2 * per_publisher
    assert summary["seqs"]["a"] == list(range(per_publisher))
    assert summary["seqs"]["b"] == list(range(per_publisher))
    assert probe.inbox.snapshot()["dropped"] == {}


class TranscriptProbe(Probe):
    subscribes: ClassVar[tuple[type[Message], ...]] = (Transcript,)


def test_local_bus_delivers_only_to_subscribers_of_the_type() -> None:
    async def scenario() -> tuple[Probe, Probe, LocalBus]:
        bus = LocalBus()
        everything = Probe(name="everything")
        everything.attach(bus)
        words = TranscriptProbe(name="words")
        words.attach(bus)
        for probe in (everything, words):
            await probe.start()
        await bus.publish(said("hello"))
        await bus.publish(metric(1))
        bus.unsubscribe("words")
        await bus.publish(said("gone"))
        for probe in (everything, words):
            await probe.stop()
        return everything, words, bus

    everything, words, bus = run(scenario())
    assert [type(m) for m in everything.received] == [Transcript, Metric, Transcript]
    assert [m.text for m in words.messages(Transcript)] == ["hello"]
    assert len(words.received) == 1
    assert bus.snapshot()["published"] == 3


# ---------------------------------------------------------------------------- inbox capacity


def test_full_inbox_makes_non_droppable_put_wait_until_get() -> None:
    async def scenario() -> None:
        inbox = Inbox(2)
        await inbox.put("a", 0, [said("one", 0)])
        await inbox.put("a", 1, [said("two", 1)])
        task = await still_blocked(inbox.put("a", 2, [said("three", 2)]))
        assert len(inbox) == 2
        first = await inbox.get()
        await asyncio.wait_for(task, 1.0)
        assert len(inbox) == 2
        rest = [await inbox.get(), await inbox.get()]
        assert [m.seq for m in [first, *rest]] == [0, 1, 2]
        snapshot = inbox.snapshot()
        assert snapshot["dropped"] == {}
        assert snapshot["delivered"] == 3
        assert snapshot["max_depth"] == 2

    run(scenario())


def test_full_inbox_drops_oldest_droppable_and_counts_per_type() -> None:
    async def scenario() -> Inbox:
        inbox = Inbox(3)
        await inbox.put("a", 0, [said("keep", 0), metric(1), frame(2)])
        # Full: a new metric pushes out the oldest droppable (metric 1), not the transcript.
        await asyncio.wait_for(inbox.put("a", 1, [metric(3)]), 1.0)
        # Full again: the oldest droppable is now the frame.
        await asyncio.wait_for(inbox.put("a", 2, [frame(4)]), 1.0)
        await asyncio.wait_for(inbox.put("a", 3, [metric(5)]), 1.0)
        return inbox

    inbox = run(scenario())
    assert inbox.snapshot()["dropped"] == {"metric": 2, "behavior_observation": 1}
    assert [m.seq for m in queued(inbox)] == [0, 4, 5]


def test_droppables_beyond_capacity_keep_the_newest() -> None:
    async def scenario() -> Inbox:
        inbox = Inbox(4)
        for n in range(10):
            await asyncio.wait_for(inbox.put("a", n, [metric(n)]), 1.0)
        return inbox

    inbox = run(scenario())
    assert inbox.snapshot()["dropped"] == {"metric": 6}
    assert [m.seq for m in queued(inbox)] == [6, 7, 8, 9]


def test_droppable_arriving_at_inbox_full_of_non_droppables_is_itself_dropped() -> None:
    async def scenario() -> Inbox:
        inbox = Inbox(2)
        await inbox.put("a", 0, [said("one", 0), said("two", 1)])
        await asyncio.wait_for(inbox.put("a", 1, [metric(2)]), 1.0)
        return inbox

    inbox = run(scenario())
    assert inbox.snapshot()["dropped"] == {"metric": 1}
    assert [m.seq for m in queued(inbox)] == [0, 1]


def test_without_drop_when_full_droppable_puts_wait() -> None:
    async def scenario() -> None:
        inbox = Inbox(1, drop_when_full=False)
        await inbox.put("a", 0, [metric(0)])
        task = await still_blocked(inbox.put("a", 1, [metric(1)]))
        assert (await inbox.get()).seq == 0
        await asyncio.wait_for(task, 1.0)
        assert (await inbox.get()).seq == 1
        assert inbox.snapshot()["dropped"] == {}

    run(scenario())


# ---------------------------------------------------------------------------- batch order


def test_out_of_order_batches_are_reordered() -> None:
    async def scenario() -> Inbox:
        inbox = Inbox(10)
        await inbox.put("a", 1, [said("second", 1)])
        assert len(inbox) == 0, "batch 1 must wait for batch 0"
        await inbox.put("a", 0, [said("first", 0)])
        return inbox

    inbox = run(scenario())
    assert [m.seq for m in queued(inbox)] == [0, 1]
    assert inbox.snapshot()["duplicates"] == 0


def test_senders_are_sequenced_independently() -> None:
    async def scenario() -> Inbox:
        inbox = Inbox(10)
        await inbox.put("a", 1, [said("a1", 1)])
        await inbox.put("b", 0, [said("b0", 10)])  # not held back by a's gap
        assert len(inbox) == 1
        await inbox.put("a", 0, [said("a0", 0)])
        return inbox

    inbox = run(scenario())
    assert [m.seq for m in queued(inbox)] == [10, 0, 1]


def test_repeated_batch_is_a_duplicate_and_not_delivered_twice() -> None:
    async def scenario() -> Inbox:
        inbox = Inbox(10)
        await inbox.put("a", 0, [said("zero", 0)])
        await inbox.put("a", 0, [said("zero again", 0)])  # already delivered
        await inbox.put("a", 2, [said("two", 2)])
        await inbox.put("a", 2, [said("two again", 2)])  # already pending
        await inbox.put("a", 1, [said("one", 1)])
        return inbox

    inbox = run(scenario())
    assert inbox.snapshot()["duplicates"] == 2
    assert [m.text for m in queued(inbox) if isinstance(m, Transcript)] == ["zero", "one", "two"]


def test_without_resync_a_new_sender_starts_at_batch_zero() -> None:
    async def scenario() -> Inbox:
        inbox = Inbox(10)
        await inbox.put("a", 7, [said("late", 7)])
        return inbox

    assert len(run(scenario())) == 0


def test_resync_takes_first_batch_from_a_new_sender_as_the_start() -> None:
    async def scenario() -> Inbox:
        inbox = Inbox(10)
        inbox.resync()
        await inbox.put("a", 7, [said("seven", 7)])
        assert len(inbox) == 1
        await inbox.put("a", 9, [said("nine", 9)])
        assert len(inbox) == 1, "batch 9 must wait for batch 8"
        await inbox.put("a", 8, [said("eight", 8)])
        await inbox.put("a", 7, [said("seven again", 7)])
        await inbox.put("b", 3, [said("b three", 3)])
        return inbox

    inbox = run(scenario())
    assert [m.seq for m in queued(inbox)] == [7, 8, 9, 3]
    assert inbox.snapshot()["duplicates"] == 1


def test_put_encoded_counts_malformed_and_delivers_the_rest() -> None:
    async def scenario() -> Inbox:
        inbox = Inbox(10)
        batch = [encode(said("one", 0)), b"\xc1 not msgpack", encode(metric(1)), b""]
        await inbox.put_encoded("a", 0, batch)
        await inbox.put_encoded("a", 1, [encode(said("two", 2))])
        return inbox

    inbox = run(scenario())
    assert inbox.snapshot()["malformed"] == 2
    assert [m.seq for m in queued(inbox)] == [0, 1, 2]


# ---------------------------------------------------------------------------- actors


class Flaky(Actor):
    """Remembers what it heard; 'boom' raises an ordinary error, 'fatal' gives up."""

    subscribes: ClassVar[tuple[type[Message], ...]] = (Transcript,)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.heard: list[str] = []

    async def on_message(self, message: Message) -> None:
        assert isinstance(message, Transcript)
        if message.text == "boom":
            raise ValueError("boom")
        if message.text == "fatal":
            raise ActorFailed("cannot carry on")
        self.heard.append(message.text)


def test_exception_in_on_message_publishes_recoverable_error_and_carries_on() -> None:
    async def scenario() -> tuple[ActorError, dict[str, Any]]:
        actor = Flaky(name="flaky", session=SessionInfo(id="s-1"))
        async with Harness(actor) as harness:
            for text in ("one", "boom", "two"):
                await harness.send(said(text))
            error = await harness.wait_for(ActorError, timeout=2.0)
            await eventually(lambda: actor.heard == ["one", "two"])
            health = actor.health()
        return error, health

    error, health = run(scenario())
    assert error.recoverable is True
    assert error.actor == "flaky"
    assert error.source == "flaky"
    assert error.session == "s-1"
    assert "ValueError: boom" in error.error
    assert health["failed"] is None
    assert health["errors"] == 1
    assert health["handled"] == 3


def test_actor_failed_marks_the_actor_failed_and_publishes_unrecoverable_error() -> None:
    async def scenario() -> tuple[Flaky, ActorError, dict[str, Any]]:
        actor = Flaky(name="flaky")
        async with Harness(actor) as harness:
            await harness.send(said("one"))
            await harness.send(said("fatal"))
            error = await harness.wait_for(ActorError, timeout=2.0)
            health = actor.health()
        return actor, error, health

    actor, error, health = run(scenario())
    assert error.recoverable is False
    assert "cannot carry on" in error.error
    assert health["failed"]
    assert "cannot carry on" in health["failed"]
    assert actor.heard == ["one"]


class Announcer(Actor):
    """Publishes what it is given."""

    async def say(self, message: Message) -> None:
        await self.publish(message)


def test_publish_stamps_session_source_seq_and_time() -> None:
    async def scenario() -> tuple[list[Message], float, float]:
        bus = LocalBus()
        probe = Probe(name="probe")
        probe.attach(bus)
        actor = Announcer(name="announcer", session=SessionInfo(id="session-42"))
        actor.attach(bus)
        await probe.start()
        before = time.time()
        forged = msgspec.structs.replace(said("forged", 99), source="someone else", session="x")
        await actor.say(forged)
        await actor.say(metric(5))
        await actor.say(TwinUtterance(text="hi", index=0, final=True, turn=3))
        after = time.time()
        await probe.stop()
        return probe.received, before, after

    received, before, after = run(scenario())
    assert [m.seq for m in received] == [0, 1, 2]
    assert {m.source for m in received} == {"announcer"}
    assert {m.session for m in received} == {"session-42"}
    assert all(before <= m.t <= after for m in received)
    assert [m.t for m in received] == sorted(m.t for m in received)
    assert received[2].turn == 3, "the turn is the publisher's to set, not stamped"


def test_publish_without_a_bus_is_an_error() -> None:
    actor = Announcer(name="loner")
    with pytest.raises(RuntimeError, match="loner"):
        run(actor.say(said("hello?")))


class Slow(Actor):
    """Takes a moment over each message (awaits inside ``on_message``)."""

    subscribes: ClassVar[tuple[type[Message], ...]] = (Transcript,)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.heard: list[str] = []

    async def on_message(self, message: Message) -> None:
        assert isinstance(message, Transcript)
        await asyncio.sleep(0.02)
        self.heard.append(message.text)


def test_stop_finishes_the_message_being_handled() -> None:
    """``stop`` must not cancel the message whose ``on_message`` is still awaiting."""

    async def scenario() -> Slow:
        actor = Slow(name="slow")
        async with Harness(actor) as harness:
            for text in ("a", "b", "c"):
                await harness.send(said(text))
        return actor

    actor = run(scenario())
    assert actor.heard == ["a", "b", "c"]
    assert actor.handled == 3
