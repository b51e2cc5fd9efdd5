"""The mission clock on a LocalBus: cues in order, trainer commands, recovery from its own log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from actors.mission import MissionDirector
from twin.actor import SessionInfo
from twin.config import Mission, load_mission
from twin.messages import ActorError, MissionEvent, TrainerControl
from twin.testing import Harness

pytestmark = pytest.mark.unit

MISSION = Path(__file__).resolve().parents[2] / "missions" / "route_clearance.yaml"


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 60))


@pytest.fixture(scope="module")
def mission() -> Mission:
    return load_mission(MISSION)


def director(mission: Mission, speed: float, mode: str = "training") -> MissionDirector:
    return MissionDirector(
        {"tick_s": 0.02},
        name="mission",
        session=SessionInfo(id="test", mission=mission, mode=mode, speed=speed),
    )


def test_runs_every_cue_in_order_to_the_end(mission: Mission) -> None:
    async def scenario() -> None:
        async with Harness(director(mission, speed=400)) as harness:
            await harness.wait_for(MissionEvent, lambda e: e.kind == "mission_ended", timeout=10)
            events = harness.probe.messages(MissionEvent)
        kinds = [(e.kind, e.name) for e in events if e.kind != "objective_met"]
        met = [e.name for e in events if e.kind == "objective_met"]
        assert met == ["reach-sp", "clear-route"]  # by the clock alone; the rest need words
        expected = [("mission_started", mission.name)]
        expected += [("phase_started", p.id) for p in mission.phases]
        expected += [("inject", i.id) for i in mission.injects]
        expected.append(("mission_ended", mission.name))
        assert sorted(kinds) == sorted(expected)
        times = [e.mission_time for e in events]
        assert times == sorted(times)
        for event in events:
            if event.kind == "inject":
                inject = next(i for i in mission.injects if i.id == event.name)
                assert event.mission_time == pytest.approx(inject.at)
                assert inject.text in event.text
        assert events[-1].kind == "mission_ended"
        assert events[-1].mission_time == pytest.approx(mission.total_duration)

    run(scenario())


def test_deployment_mode_fires_no_injects(mission: Mission) -> None:
    async def scenario() -> None:
        async with Harness(director(mission, speed=400, mode="deployment")) as harness:
            await harness.wait_for(MissionEvent, lambda e: e.kind == "mission_ended", timeout=10)
            assert not [e for e in harness.probe.messages(MissionEvent) if e.kind == "inject"]

    run(scenario())


def test_trainer_pauses_resumes_injects_and_ends(mission: Mission) -> None:
    async def scenario() -> None:
        actor = director(mission, speed=1)  # real time: nothing but the trainer moves it on
        async with Harness(actor) as harness:
            await harness.wait_for(MissionEvent, lambda e: e.kind == "phase_started")
            await harness.send(TrainerControl(command="pause"))
            paused = await harness.wait_for(MissionEvent, lambda e: e.kind == "paused")
            frozen = actor.mission_time()
            await asyncio.sleep(0.2)
            assert actor.mission_time() == frozen == pytest.approx(paused.mission_time, abs=1e-3)
            await harness.send(TrainerControl(command="resume"))
            await harness.wait_for(MissionEvent, lambda e: e.kind == "resumed")
            last = mission.injects[-1]
            await harness.send(TrainerControl(command="inject", argument=last.id))
            fired = await harness.wait_for(MissionEvent, lambda e: e.name == last.id)
            assert fired.mission_time < 5  # fired now, not at its scheduled time
            await harness.send(TrainerControl(command="inject", argument="no-such-inject"))
            error = await harness.wait_for(ActorError)
            assert "no-such-inject" in error.error and last.id in error.error
            await harness.send(TrainerControl(command="end", argument="exercise stopped"))
            ended = await harness.wait_for(MissionEvent, lambda e: e.kind == "mission_ended")
            assert ended.text == "exercise stopped"
            assert actor.ended

    run(scenario())


def test_skip_phase_jumps_to_the_next_phase_without_its_injects(mission: Mission) -> None:
    async def scenario() -> None:
        async with Harness(director(mission, speed=1)) as harness:
            await harness.wait_for(MissionEvent, lambda e: e.name == mission.phases[0].id)
            await harness.send(TrainerControl(command="skip_phase"))
            second = await harness.wait_for(MissionEvent, lambda e: e.name == mission.phases[1].id)
            assert second.mission_time == pytest.approx(mission.phase_start(mission.phases[1].id))
            skipped = [i.id for i in mission.injects if i.at < second.mission_time]
            await asyncio.sleep(0.2)
            names = {e.name for e in harness.probe.messages(MissionEvent)}
            assert skipped and not names & set(skipped)

    run(scenario())


def test_recovers_from_its_own_events_without_firing_twice(mission: Mission) -> None:
    """A restarted director picks up the clock from its last event and fires only what is left."""

    async def scenario() -> None:
        first = director(mission, speed=1)
        async with Harness(first) as harness:
            await harness.send(TrainerControl(command="skip_phase"))
            await harness.send(TrainerControl(command="skip_phase"))
            await harness.wait_for(MissionEvent, lambda e: e.name == mission.phases[2].id)
            history = harness.probe.messages(MissionEvent)
        second = director(mission, speed=400)
        await second.recover(history)
        assert second.mission_time() >= mission.phase_start(mission.phases[2].id)
        async with Harness(second) as harness:
            await harness.wait_for(MissionEvent, lambda e: e.kind == "mission_ended", timeout=10)
            again = {e.name for e in harness.probe.messages(MissionEvent)}
        before = {e.name for e in history}
        assert not again & before - {mission.name}  # nothing already fired fires again
        later = {i.id for i in mission.injects if i.at >= mission.phase_start(mission.phases[2].id)}
        assert later <= again

    run(scenario())


def test_recovering_after_downtime_catches_up_with_the_wall_clock(mission: Mission) -> None:
    async def scenario() -> None:
        last = MissionEvent(
            kind="phase_started",
            mission=mission.name,
            mission_time=10.0,
            name=mission.phases[0].id,
            t=time.time() - 2.0,
        )
        actor = director(mission, speed=1)
        await actor.recover([last])
        assert actor.mission_time() == pytest.approx(12.0, abs=0.2)

    run(scenario())
