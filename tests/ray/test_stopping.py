"""The end of a session on a real Ray: an actor that does not stop (its stop blocks its process's
event loop, a bug no cancel reaches) is killed after its grace period with one line naming it,
while the others stop cleanly and the log keeps everything."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from twin.config import load_config, load_mission
from twin.log import LogReader
from twin.messages import Metric, MissionEvent
from twin.runtime import Session
from twin.testing import core_config

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_cluster")]

ROOT = Path(__file__).resolve().parents[2]
GRACE_S = 2.0


def test_an_actor_stuck_in_its_stop_is_killed_after_its_grace_period(tmp_path: Path) -> None:
    import ray

    config = core_config(
        load_config(ROOT / "configs" / "test.yaml"), tmp_path,
        stuck={"class": "twin.testing.Stuck", "stop_timeout_s": GRACE_S,
               "settings": {"how": "block"}},
        ticker={"class": "twin.testing.Ticker", "settings": {"interval_s": 0.01, "count": 0}},
    )
    mission = load_mission(ROOT / "missions" / "route_clearance.yaml")
    notices: list[str] = []
    session = Session(config, mission, speed=60, on_notice=notices.append)
    result = asyncio.run(session.run(timeout=60))
    returned = time.time()

    assert result.reason.startswith("mission ended"), result.reason
    assert notices == [f"actor stuck did not stop within {GRACE_S:g} s; killed it"]
    with LogReader(result.log_path) as reader:
        ended = [m for m in reader.messages(types=["mission_event"])
                 if isinstance(m, MissionEvent) and m.kind == "mission_ended"]
        ticks = [m.value for m in reader.messages(source="ticker") if isinstance(m, Metric)]
    assert ticks == list(range(len(ticks))) and len(ticks) > 50  # the ticker stopped cleanly
    assert GRACE_S <= returned - ended[0].t < GRACE_S + 15  # waited the grace, then went on
    with pytest.raises(ValueError):  # and its process is gone
        ray.get_actor(f"{session.id}/stuck", namespace=config.ray.namespace)
