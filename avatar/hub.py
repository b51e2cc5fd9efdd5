"""The pages connected to the gateway, each with a bounded send queue, and the recent history.

The gateway hands every frame to ``Hub.broadcast`` once; each connected page (``Client``) has
its own queue, emptied by that page's sender task at the pace its socket allows, so a slow page
never holds up the bus or the other pages. When a queue is full the oldest frame that is not
essential (anything but the twin's speech and the orders to stop it) is dropped and counted; a
page so far behind that its queue holds nothing but speech is closed (it reconnects and catches
up from the history).

The history keeps the last console frames (mission events, final transcripts, the twin's
replies, the operator's state, turn latencies): a page that joins late, or reconnects, gets them
first. Speech is never replayed. Everything here runs on the gateway's server event loop.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from avatar.access import Role


@dataclass(frozen=True)
class OutFrame:
    """One frame for the pages: its JSON text, its type, and whether it may be dropped."""

    text: str
    kind: str
    essential: bool = False


class Client:
    """One connected page's send queue."""

    def __init__(self, role: Role, capacity: int) -> None:
        self.role = role
        self.capacity = capacity
        self.queue: collections.deque[OutFrame] = collections.deque()
        self.dropped = 0
        self.sent = 0
        self.too_slow = False
        self.closed = False
        self.on_slow: Callable[[], None] | None = None  # the socket's owner lets it go
        self._ready = asyncio.Event()

    def push(self, frame: OutFrame) -> None:
        """Queue ``frame``; when full, drop the oldest droppable frame (or this one). Essential
        frames may overfill the queue up to twice its capacity; past that the page is too slow."""
        if self.closed:
            return
        if len(self.queue) >= self.capacity:
            victim = next((queued for queued in self.queue if not queued.essential), None)
            if victim is not None:
                self.queue.remove(victim)
                self.dropped += 1
            elif not frame.essential:
                self.dropped += 1
                return
            elif len(self.queue) >= 2 * self.capacity:
                self.too_slow = True  # nothing left to drop: the page is let go
                self.queue.clear()
                self._ready.set()
                if self.on_slow is not None:
                    self.on_slow()
                return
        self.queue.append(frame)
        self._ready.set()

    async def next(self) -> OutFrame | None:
        """The next frame to send; None once the client is closed or too slow."""
        while not self.queue and not self.closed and not self.too_slow:
            self._ready.clear()
            await self._ready.wait()
        if self.closed or self.too_slow:
            return None
        return self.queue.popleft()

    def close(self) -> None:
        self.closed = True
        self._ready.set()


class Hub:
    """Every connected page, and the history a new page starts from."""

    def __init__(self, capacity: int, history: int) -> None:
        self.capacity = capacity
        self.clients: set[Client] = set()
        self.history: collections.deque[OutFrame] = collections.deque(maxlen=history)
        self.broadcasts = 0
        self.closed_slow = 0
        self.dropped_gone = 0  # drops counted by pages that have since left

    def join(self, role: Role) -> Client:
        client = Client(role, self.capacity)
        for frame in self.history:
            client.push(frame)
        self.clients.add(client)
        return client

    def leave(self, client: Client) -> None:
        if client in self.clients:
            self.clients.discard(client)
            self.dropped_gone += client.dropped
            self.closed_slow += client.too_slow
        client.close()

    def broadcast(self, frame: OutFrame, *, keep: bool = False) -> None:
        """Queue ``frame`` for every page; ``keep`` also puts it in the history."""
        self.broadcasts += 1
        if keep:
            self.history.append(frame)
        for client in list(self.clients):
            client.push(frame)
            if client.too_slow:
                self.leave(client)

    def close_all(self) -> None:
        for client in list(self.clients):
            client.close()

    def snapshot(self) -> dict[str, Any]:
        roles: dict[str, int] = {}
        for client in self.clients:
            roles[client.role] = roles.get(client.role, 0) + 1
        return {
            "clients": roles,
            "broadcasts": self.broadcasts,
            "dropped": self.dropped_gone + sum(c.dropped for c in self.clients),
            "closed_slow": self.closed_slow,
            "history": len(self.history),
        }
