"""Review of a recorded session: replay it onto a bus with its original timing.

``replay`` reads the session log and re-publishes every message (envelope unchanged) on a bus at
the original pace scaled by ``speed``, optionally starting at a time offset or a turn. Subscribers
(the console, the avatar gateway) see the session again as it happened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from twin.bus import Bus
from twin.log import LogReader

MIN_SPEED, MAX_SPEED = 0.1, 100.0


async def replay(
    path: str | Path,
    bus: Bus,
    *,
    speed: float = 1.0,
    types: Iterable[str] | None = None,
    start_at: float = 0.0,
    turn: int | None = None,
) -> int:
    """Re-publish the log at ``path`` on ``bus``; returns how many messages were replayed.

    ``start_at`` skips the first seconds of the session; ``turn`` starts at that turn's first
    message. Timing is taken from each message's envelope time ``t``.
    """
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise ValueError(f"speed must be between {MIN_SPEED} and {MAX_SPEED}, got {speed}")
    loop = asyncio.get_running_loop()
    count = 0
    with LogReader(path) as reader:
        first = next(reader.messages(limit=1), None)
        if first is None:
            return 0
        origin = first.t + start_at
        if turn is not None:
            first_of_turn = next(reader.messages(turn=turn, limit=1), None)
            if first_of_turn is None:
                raise ValueError(f"{path}: no turn {turn} in this session")
            origin = first_of_turn.t
        wall_origin = loop.time()
        for message in reader.messages(types=types, since=origin):
            delay = wall_origin + (message.t - origin) / speed - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await bus.publish(message)
            count += 1
    await bus.flush()
    return count
