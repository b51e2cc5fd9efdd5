"""A whole session in one process (``--local``): placement, supervision policies, the log."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from twin.config import ConfigError, TwinConfig, load_config, load_mission
from twin.log import LogReader
from twin.messages import ActorError, Metric, MissionEvent
from twin.runtime import Session, SessionResult, plan_actors
from twin.testing import core_config

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def config_with(tmp_path: Path, **extra: dict[str, Any]) -> TwinConfig:
    return core_config(load_config(ROOT / "configs" / "test.yaml"), tmp_path, **extra)


def run_session(config: TwinConfig, speed: float = 100, timeout: float = 30) -> SessionResult:
    mission = load_mission(ROOT / "missions" / "route_clearance.yaml")
    notices: list[str] = []
    session = Session(config, mission, local=True, speed=speed, on_notice=notices.append)
    result = asyncio.run(session.run(timeout=timeout))
    result.notices = notices  # type: ignore[attr-defined]
    return result


def test_local_session_runs_the_mission_to_its_end_and_logs_it(tmp_path: Path) -> None:
    result = run_session(config_with(tmp_path))
    assert result.reason.startswith("mission ended")
    with LogReader(result.log_path) as reader:
        meta = reader.meta()
        events = list(reader.messages(types=["mission_event"]))
    assert meta["mission_name"] == "route_clearance"
    assert meta["config"]["actors"]["recorder"]["class"] == "actors.recorder.Recorder"
    assert meta["mission"]["phases"][0]["id"] == "standup"
    assert events[0].kind == "mission_started" and events[-1].kind == "mission_ended"
    assert result.messages == len(events)
    seqs = [e.seq for e in events]
    assert seqs == list(range(len(events)))


def test_restart_policy_restarts_a_failed_actor(tmp_path: Path) -> None:
    config = config_with(
        tmp_path,
        faulty={
            "class": "twin.testing.Faulty",
            "on_failure": "restart",
            "max_restarts": 2,
            "settings": {"fail_after_s": 0.05},
        },
    )
    result = run_session(config, speed=60)
    with LogReader(result.log_path) as reader:
        errors = [e for e in reader.messages(types=["actor_error"]) if isinstance(e, ActorError)]
    actions = [e.action for e in errors if e.source == "runtime"]
    assert actions[:2] == ["restart", "restart"]
    assert actions[2] == "degrade"  # restarts used up
    assert result.degraded == ["faulty"]
    assert result.reason.startswith("mission ended")  # the session carried on


def test_degrade_policy_carries_on_without_the_actor(tmp_path: Path) -> None:
    config = config_with(
        tmp_path,
        faulty={
            "class": "twin.testing.Faulty",
            "on_failure": "degrade",
            "settings": {"how": "start"},
        },
    )
    result = run_session(config)
    assert result.degraded == ["faulty"]
    assert result.reason.startswith("mission ended")
    notices = result.notices  # type: ignore[attr-defined]
    assert any("continuing without faulty" in n for n in notices)


def test_end_policy_ends_the_session_and_keeps_the_log(tmp_path: Path) -> None:
    config = config_with(
        tmp_path,
        faulty={
            "class": "twin.testing.Faulty",
            "on_failure": "end",
            "settings": {"fail_after_s": 0.1},
        },
        ticker={"class": "twin.testing.Ticker", "settings": {"interval_s": 0.01, "count": 0}},
    )
    result = run_session(config, speed=1)
    assert "faulty" in result.reason and "failed on purpose" in result.reason
    with LogReader(result.log_path) as reader:
        ticks = [m for m in reader.messages(types=["metric"]) if isinstance(m, Metric)]
        errors = list(reader.messages(types=["actor_error"]))
        events = list(reader.messages(types=["mission_event"]))
    assert ticks and [t.value for t in ticks] == list(range(len(ticks)))  # nothing lost
    assert any(isinstance(e, ActorError) and e.action == "end" for e in errors)
    assert isinstance(events[0], MissionEvent)


def test_bad_actor_class_and_settings_name_the_field(tmp_path: Path) -> None:
    config = config_with(
        tmp_path,
        ghost={"class": "actors.nowhere.Ghost"},
        notactor={"class": "twin.config.TwinConfig"},
        ticker={"class": "twin.testing.Ticker", "settings": {"interval_s": -1, "colour": 1}},
    )
    with pytest.raises(ConfigError) as caught:
        plan_actors(config, "configs/x.yaml")
    text = str(caught.value)
    assert "configs/x.yaml" in text
    assert "actors.ghost.class" in text and "actors.nowhere" in text
    assert "actors.notactor.class" in text and "not a twin Actor" in text
    assert "actors.ticker.settings.interval_s" in text
    assert "actors.ticker.settings.colour" in text


def test_an_actor_that_does_not_stop_is_killed_after_its_grace_period_with_one_line(
        tmp_path: Path) -> None:
    config = config_with(
        tmp_path,
        stuck={"class": "twin.testing.Stuck", "stop_timeout_s": 0.5},
        ticker={"class": "twin.testing.Ticker", "settings": {"interval_s": 0.01, "count": 0}},
    )
    started = time.monotonic()
    result = run_session(config, speed=120)
    assert time.monotonic() - started < 10  # not held up by the stuck actor
    assert result.reason.startswith("mission ended")
    notices = result.notices  # type: ignore[attr-defined]
    assert notices == ["actor stuck did not stop within 0.5 s; killed it"]
    with LogReader(result.log_path) as reader:  # the others stopped, the recorder last
        events = [m for m in reader.messages(types=["mission_event"])
                  if isinstance(m, MissionEvent)]
        ticks = [m.value for m in reader.messages(source="ticker") if isinstance(m, Metric)]
    assert events[-1].kind == "mission_ended"
    assert ticks == list(range(len(ticks))) and len(ticks) > 10


def test_an_actor_whose_start_takes_too_long_is_named_with_its_time_limit(
        tmp_path: Path) -> None:
    config = config_with(tmp_path, slow={"class": "twin.testing.Stuck", "start_timeout_s": 0.3,
                                         "settings": {"how": "start"}})
    result = run_session(config, speed=120)
    assert result.degraded == ["slow"] and result.reason.startswith("mission ended")
    notices = result.notices  # type: ignore[attr-defined]
    assert notices == ["actor slow did not answer start within 0.3 s; continuing without slow"]
