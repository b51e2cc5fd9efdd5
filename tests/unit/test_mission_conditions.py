"""Conditions in missions: injects on the operator's words and on the mission's state, objectives
met, phases ended early, deployment mode, pause, recovery — and their validation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from actors.mission import MissionDirector, said
from twin.actor import SessionInfo
from twin.config import ConfigError, Mission, load_mission
from twin.log import SessionLog
from twin.messages import MissionEvent, TrainerControl, Transcript
from twin.testing import Harness

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]

DRILL: dict[str, Any] = {
    "name": "drill",
    "title": "Condition drill",
    "setting": "a test bench",
    "briefing": "check the conditions",
    "roster": [{"id": "op", "callsign": "OP", "name": "Op", "role": "operator"}],
    "objectives": [
        {"id": "ready", "text": "Say you are ready", "when": {"said": ["ready"]}},
        {"id": "cleared", "text": "All clear received", "when": {"fired": ["all-clear"]}},
    ],
    "phases": [
        {"id": "brief", "title": "Brief", "duration": 20, "until": {"said": ["ready"]}},
        {"id": "work", "title": "Work", "duration": 40, "until": {"met": ["cleared"]}},
        {"id": "debrief", "title": "Debrief", "duration": 10},
    ],
    "injects": [
        {"id": "t1", "at": 25, "text": "timed one"},
        {"id": "all-clear", "text": "all clear", "when": {"fired": ["t1"], "after": 28}},
        {"id": "late", "at": 50, "text": "never: the work phase ends before"},
        {"id": "fuel", "text": "fuel at 40 %", "when": {"said": ["fuel", "diesel"]}},
        {"id": "oxygen", "text": "O2 at 19 %", "repeat": True,
         "when": {"matches": r"\b(oxygen|o2)\b", "phase": "work"}},
    ],
}


def drill(**changes: Any) -> Mission:
    return Mission.model_validate({**DRILL, **changes})


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 60))


def director(mission: Mission, speed: float, mode: str = "training",
             log_path: Path | None = None) -> MissionDirector:
    return MissionDirector({"tick_s": 0.02}, name="mission", session=SessionInfo(
        id="test", mission=mission, mode=mode, speed=speed, log_path=log_path))


def heard(text: str, final: bool = True, turn: int = 1) -> Transcript:
    return Transcript(text=text, final=final, turn=turn)


def events(harness: Harness, kind: str | None = None) -> list[MissionEvent]:
    return [e for e in harness.probe.messages(MissionEvent) if kind is None or e.kind == kind]


def test_words_match_whole_words_and_the_regex_case_insensitively() -> None:
    condition = drill().injects[3].when
    assert condition is not None
    assert said(condition, "What's our FUEL state?") == "fuel"
    assert said(condition, "any diesel left") == "diesel"
    assert said(condition, "we are refuelling") is None  # a word, not a substring
    oxygen = drill().injects[4].when
    assert oxygen is not None and said(oxygen, "Oxygen level?") == "Oxygen"
    assert said(oxygen, "the oxygenator") is None


def test_an_inject_fires_once_when_the_operator_asks_and_says_why() -> None:
    async def scenario() -> None:
        async with Harness(director(drill(), speed=1)) as harness:
            await harness.wait_for(MissionEvent, lambda e: e.name == "brief")
            await harness.send(heard("fuel", final=False))  # a partial transcript: not yet
            await asyncio.sleep(0.1)
            assert not events(harness, "inject")
            await harness.send(heard("What's our fuel state?", turn=3))
            fired = await harness.wait_for(MissionEvent, lambda e: e.name == "fuel")
            assert fired.text == "fuel at 40 %" and "'fuel'" in fired.reason
            assert "turn 3" in fired.reason and fired.mission_time < 5
            await harness.send(heard("and fuel again?", turn=4))
            await asyncio.sleep(0.2)
            assert [e.name for e in events(harness, "inject")] == ["fuel"]  # once

    run(scenario())


def test_a_phase_ends_early_when_the_operator_says_so_and_the_clock_moves_on() -> None:
    mission = drill()

    async def scenario() -> None:
        actor = director(mission, speed=1)
        async with Harness(actor) as harness:
            await harness.wait_for(MissionEvent, lambda e: e.name == "brief")
            await harness.send(heard("Bravo is ready to go"))
            met = await harness.wait_for(MissionEvent, lambda e: e.kind == "objective_met")
            work = await harness.wait_for(MissionEvent, lambda e: e.name == "work")
            assert met.name == "ready" and "'ready'" in met.reason
            assert work.mission_time == pytest.approx(mission.phase_start("work"))
            assert "'brief' ended early" in work.reason and "ready" in work.reason
            assert actor.phase == "work" and actor.mission_time() >= 20
            # a repeating inject, only in its phase, on a regular expression
            await harness.send(heard("Oxygen?"))
            await harness.send(heard("What is the O2 now"))
            await harness.wait_for(MissionEvent, lambda e: e.name == "oxygen" and "O2" in e.reason)
            assert [e.name for e in events(harness, "inject")].count("oxygen") == 2

    run(scenario())


def test_state_conditions_chain_and_end_a_phase_skipping_what_was_planned() -> None:
    mission = drill()

    async def scenario() -> None:
        async with Harness(director(mission, speed=100)) as harness:
            await harness.send(heard("ready"))
            await harness.wait_for(MissionEvent, lambda e: e.kind == "mission_ended", timeout=10)
            seen = events(harness)
        order = [(e.kind, e.name) for e in seen]
        # t1 on time -> all-clear (after T+28) -> objective cleared -> the work phase ends
        assert order.index(("inject", "t1")) < order.index(("inject", "all-clear"))
        assert order.index(("inject", "all-clear")) < order.index(("objective_met", "cleared"))
        assert order.index(("objective_met", "cleared")) < order.index(("phase_started", "debrief"))
        clear = next(e for e in seen if e.name == "all-clear")
        assert clear.mission_time >= 28 and clear.reason == "its condition held"
        debrief = next(e for e in seen if e.name == "debrief")
        assert debrief.mission_time == pytest.approx(mission.phase_start("debrief"))
        assert "'work' ended early" in debrief.reason
        assert ("inject", "late") not in order  # planned for the part of the phase skipped
        assert len(order) == len(set(order))
        assert seen[-1].mission_time == pytest.approx(mission.total_duration)

    run(scenario())


def test_deployment_mode_fires_no_conditional_inject_but_meets_objectives() -> None:
    async def scenario() -> None:
        async with Harness(director(drill(), speed=1, mode="deployment")) as harness:
            await harness.wait_for(MissionEvent, lambda e: e.name == "brief")
            await harness.send(heard("fuel state, and we are ready"))
            await harness.wait_for(MissionEvent, lambda e: e.name == "work")
            assert [e.name for e in events(harness, "objective_met")] == ["ready"]
            assert not events(harness, "inject")

    run(scenario())


def test_nothing_fires_while_paused_and_the_clock_holds() -> None:
    async def scenario() -> None:
        actor = director(drill(), speed=1)
        async with Harness(actor) as harness:
            await harness.wait_for(MissionEvent, lambda e: e.name == "brief")
            await harness.send(TrainerControl(command="pause"))
            await harness.wait_for(MissionEvent, lambda e: e.kind == "paused")
            held = actor.mission_time()
            await harness.send(heard("fuel"))
            await asyncio.sleep(0.3)
            assert not events(harness, "inject") and actor.mission_time() == held
            await harness.send(TrainerControl(command="resume"))
            await harness.wait_for(MissionEvent, lambda e: e.kind == "resumed")
            await asyncio.sleep(0.2)
            assert actor.mission_time() > held
            await harness.send(heard("fuel"))
            await harness.wait_for(MissionEvent, lambda e: e.name == "fuel")

    run(scenario())


def test_the_clock_runs_at_the_session_speed() -> None:
    async def scenario() -> None:
        actor = director(drill(), speed=10)
        async with Harness(actor) as harness:
            await harness.wait_for(MissionEvent, lambda e: e.name == "brief")
            start_wall, start_mission = time.monotonic(), actor.mission_time()
            await asyncio.sleep(0.5)
            rate = (actor.mission_time() - start_mission) / (time.monotonic() - start_wall)
            assert rate == pytest.approx(10, rel=0.05)

    run(scenario())


def test_recovery_fires_nothing_twice_and_hears_what_was_said_while_down(tmp_path: Path) -> None:
    mission = drill()
    log_path = tmp_path / "session.db"
    log = SessionLog.create(log_path, {"session": "test"})

    async def scenario() -> None:
        first = director(mission, speed=1, log_path=log_path)
        async with Harness(first) as harness:
            await harness.wait_for(MissionEvent, lambda e: e.name == "brief")
            await harness.send(heard("fuel?"))
            await harness.wait_for(MissionEvent, lambda e: e.name == "fuel")
            history = events(harness)
        # while the director was down the operator said they were ready: it is in the log
        log.append([Transcript(text="ready now", final=True, turn=9, source="speech",
                               t=time.time())])
        second = director(mission, speed=1, log_path=log_path)
        await second.recover(history)
        async with Harness(second) as harness:
            await harness.wait_for(MissionEvent, lambda e: e.name == "work")
            await harness.send(heard("fuel again"))
            await asyncio.sleep(0.2)
            again = events(harness)
        assert [e.name for e in again if e.kind == "objective_met"] == ["ready"]
        assert "turn 9" in next(e for e in again if e.kind == "objective_met").reason
        assert not [e for e in again if e.kind == "inject"]  # fuel fired before the restart
        assert not [e for e in again if e.name in ("brief", "drill")]

    run(scenario())
    log.close()


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        (("injects", 1, "when", "fired", 0), "nope", "injects[1].when.fired[0]",
         'unknown inject "nope"'),
        (("objectives", 1, "when", "fired", 0), "nope", "objectives[1].when.fired[0]",
         'unknown inject "nope"'),
        (("phases", 1, "until", "met", 0), "nope", "phases[1].until.met[0]",
         'unknown objective "nope"'),
        (("injects", 4, "when", "phase"), "nope", "injects[4].when.phase", 'unknown phase "nope"'),
        (("injects", 4, "when", "matches"), "(oxygen", "injects[4].when.matches",
         "not a valid regular expression"),
        (("injects", 1, "when", "after"), "T+05:00", "injects[1].when.after",
         "beyond the end of the mission"),
        (("injects", 0, "when"), {"said": ["x"]}, "injects[0]", 'either "at"'),
        (("injects", 3, "when"), {}, "injects[3].when", "an empty condition"),
        (("injects", 1, "repeat"), True, "injects[1]", '"repeat" needs a condition'),
        (("injects", 1, "when", "fired", 0), "all-clear", "injects[1].when.fired",
         "cannot wait for itself"),
    ],
)
def test_a_bad_condition_is_refused_with_its_file_and_field(
        tmp_path: Path, path: tuple[Any, ...], value: Any, field: str, message: str) -> None:
    import copy

    import yaml

    data = copy.deepcopy(DRILL)
    target: Any = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    file = tmp_path / "drill.yaml"
    file.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as error:
        load_mission(file)
    text = str(error.value)
    assert f"{file}: {field}" in text and message in text, text


def test_every_example_mission_is_valid_and_uses_conditions() -> None:
    files = sorted(p for p in (ROOT / "missions").glob("*.yaml")
                   if not p.name.endswith(".questions.yaml"))
    assert len(files) >= 3
    for file in files:
        mission = load_mission(file)
        assert mission.script and mission.knowledge and mission.objectives, file
    conditional = [load_mission(f) for f in files]
    assert any(i.when is not None for m in conditional for i in m.injects)
    assert any(p.until is not None for m in conditional for p in m.phases)
    assert any(o.when is not None for m in conditional for o in m.objectives)


def test_the_scripted_operator_follows_the_clock_when_a_phase_ends_early() -> None:
    """Its lines are timed on the director's clock: a jump skips the lines it passes over."""
    import numpy as np

    from actors.sources import ScriptedOperator

    mission = drill()
    operator = ScriptedOperator(name="operator_audio", session=SessionInfo(
        id="test", mission=mission, mode="training", speed=2.0))
    silence = np.zeros(160, np.float32)
    operator._lines = [(5.0, silence), (12.0, silence), (30.0, silence)]

    async def scenario() -> None:
        now = time.time()
        await operator.on_message(MissionEvent(kind="mission_started", mission="drill",
                                               mission_time=0.0, t=now - 1.0))
        assert operator._mission_time() == pytest.approx(2.0, abs=0.1)  # 1 s at speed 2
        operator._spoken = 1  # the line at T+5 was spoken
        await operator.on_message(MissionEvent(kind="phase_started", mission="drill",
                                               mission_time=20.0, name="work", t=time.time(),
                                               reason="phase 'brief' ended early"))
        assert operator._mission_time() == pytest.approx(20.0, abs=0.1)
        assert operator._spoken == 2  # the line at T+12 was jumped over, T+30 is still to come
        await operator.on_message(MissionEvent(kind="paused", mission="drill",
                                               mission_time=21.0, t=time.time()))
        await asyncio.sleep(0.1)
        assert operator._mission_time() == pytest.approx(21.0, abs=0.05)  # held while paused
        await operator.on_message(MissionEvent(kind="resumed", mission="drill",
                                               mission_time=21.0, t=time.time()))
        await asyncio.sleep(0.1)
        assert operator._mission_time() == pytest.approx(21.2, abs=0.1)

    run(scenario())
