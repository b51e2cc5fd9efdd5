"""Replay of a recorded session: re-publish its log onto a bus with the original timing.

``replay`` reads the session log and re-publishes every message (envelope unchanged) on a bus at
the original pace scaled by ``speed`` (0.5x to 8x: slow enough to follow, fast enough to skim,
and what the avatar page can play with audio and lips in step), optionally starting at a time
offset or a turn. Subscribers (the console, the avatar gateway) see the session again as it
happened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from twin.bus import Bus
from twin.log import LogReader

MIN_SPEED, MAX_SPEED = 0.5, 8.0


def check_speed(speed: float) -> float:
    """``speed`` if it is a replay speed twin supports; ``ValueError`` saying the range if not."""
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise ValueError(f"replay speed must be between {MIN_SPEED:g}x and {MAX_SPEED:g}x, "
                         f"got {speed:g}")
    return speed


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
    check_speed(speed)
    if start_at < 0:
        raise ValueError(f"the start time must be 0 s or later, got {start_at:g}")
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
