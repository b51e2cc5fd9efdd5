"""Sessions on a real local Ray: real actors exchanging messages, a killed actor coming back."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

from twin.config import TwinConfig, load_config, load_mission
from twin.log import LogReader
from twin.messages import ActorError, Metric, MissionEvent
from twin.runtime import ActorGone, Session
from twin.testing import core_config

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_cluster")]

ROOT = Path(__file__).resolve().parents[2]


def config_with(tmp_path: Path, **extra: dict[str, Any]) -> TwinConfig:
    return core_config(load_config(ROOT / "configs" / "test.yaml"), tmp_path, **extra)


def test_actors_exchange_messages_and_everything_is_logged_in_order(tmp_path: Path) -> None:
    config = config_with(
        tmp_path,
        ticker={"class": "twin.testing.Ticker", "settings": {"interval_s": 0.005, "count": 400}},
        probe={"class": "twin.testing.Probe"},
    )
    mission = load_mission(ROOT / "missions" / "route_clearance.yaml")
    session = Session(config, mission, speed=10)  # 18 s: the ticker is done long before
    summaries: dict[str, Any] = {}

    async def scenario() -> Any:
        task = asyncio.create_task(session.run(timeout=60))
        while not task.done():
            await asyncio.sleep(0.5)
            if session.watches["probe"].placed is not None:
                with contextlib.suppress(ActorGone):  # the session may have just ended
                    summaries.update(await session.watches["probe"].placed.call("summary"))
        return await task

    result = asyncio.run(scenario())
    assert result.reason.startswith("mission ended")
    with LogReader(result.log_path) as reader:
        ticks = [m for m in reader.messages(source="ticker") if isinstance(m, Metric)]
        events = [m for m in reader.messages(source="mission") if isinstance(m, MissionEvent)]
        assert reader.meta()["placement"] == "ray"
    assert [t.value for t in ticks] == list(range(400))  # per-publisher order, nothing lost
    assert [e.seq for e in events] == list(range(len(events)))
    assert events[-1].kind == "mission_ended"
    # the probe (another Ray actor) saw the ticker's messages in publication order
    seen = summaries["seqs"]["ticker"]
    assert seen == sorted(seen) and len(seen) >= 300


def injects_fired(log: Path) -> bool:
    if not log.exists():
        return False
    with LogReader(log) as reader:
        return any(isinstance(m, MissionEvent) and m.kind == "inject"
                   for m in reader.messages(types=["mission_event"]))


def test_a_killed_actor_is_restarted_and_the_session_continues(tmp_path: Path) -> None:
    import ray

    config = config_with(tmp_path)
    mission = load_mission(ROOT / "missions" / "route_clearance.yaml")
    session = Session(config, mission, speed=12)  # 15 s of mission
    notices: list[str] = []
    session.on_notice = notices.append

    async def scenario() -> Any:
        task = asyncio.create_task(session.run(timeout=120))
        while not injects_fired(session.log_path):  # into the mission: an inject has fired
            assert not task.done()
            await asyncio.sleep(0.2)
        placed: Any = session.watches["mission"].placed
        ray.kill(placed.handle, no_restart=False)
        return await task

    result = asyncio.run(scenario())
    assert result.reason.startswith("mission ended"), result.reason
    assert any("mission was restarted" in n for n in notices), notices
    with LogReader(result.log_path) as reader:
        events = [m for m in reader.messages(types=["mission_event"])
                  if isinstance(m, MissionEvent)]
        errors = [m for m in reader.messages(types=["actor_error"]) if isinstance(m, ActorError)]
    names = [(e.kind, e.name) for e in events]
    assert len(names) == len(set(names)), "a cue fired twice after the restart"
    expected = {("inject", i.id) for i in mission.injects} | {
        ("phase_started", p.id) for p in mission.phases}
    assert expected <= set(names), "a cue was lost across the restart"
    assert names[-1] == ("mission_ended", mission.name)
    assert any(e.actor == "mission" and e.action == "restart" for e in errors)
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # seq continues from the log
