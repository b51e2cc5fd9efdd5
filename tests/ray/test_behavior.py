"""The behaviour tracker as a real Ray actor in a session: it plays a real face video at real
time and every observation reaches the session log, at the rate the actor reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twin.config import load_config, load_mission
from twin.log import LogReader
from twin.messages import BehaviorObservation, Metric
from twin.runtime import Session
from twin.testing import core_config

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_cluster")]

ROOT = Path(__file__).resolve().parents[2]
VIDEO = ROOT / "tests" / "fixtures" / "video" / "WolfgangLanger_Pexels.mp4"  # 472 frames, 24 fps


def test_the_tracker_on_ray_logs_observations_at_the_video_rate(tmp_path: Path) -> None:
    import asyncio

    base = load_config(ROOT / "configs" / "test.yaml")
    behavior = base.actors["behavior"].model_dump(by_alias=True)
    behavior.update(enabled=True, settings={**behavior["settings"], "video": str(VIDEO),
                                            "fps_limit": 12})
    config = core_config(base, tmp_path, behavior=behavior)
    mission = load_mission(ROOT / "missions" / "route_clearance.yaml")
    session = Session(config, mission, speed=20)  # 9 s of mission; the video lasts 19.7 s
    result = asyncio.run(session.run(timeout=40))

    assert "behavior" not in result.degraded
    with LogReader(result.log_path) as reader:
        meta = reader.meta()
        observations = [m for m in reader.messages(types=["behavior_observation"])
                        if isinstance(m, BehaviorObservation)]
        rates = [m for m in reader.messages(types=["metric"], source="behavior")
                 if isinstance(m, Metric) and m.name == "behavior_fps"]
    assert meta["placement"] == "ray"
    assert len(observations) > 60
    assert all(o.source == "behavior" for o in observations)
    assert sum(o.face_present for o in observations) >= 0.95 * len(observations)
    assert all(o.expression for o in observations if o.face_present)
    # Real time: stream time advances with wall time; 12 frames per second of stream time.
    stream = np.array([o.frame_t for o in observations])
    wall = np.array([o.t for o in observations])
    assert np.all(np.diff(stream) > 0)
    assert (wall[-1] - wall[0]) == pytest.approx(stream[-1] - stream[0], rel=0.1, abs=0.5)
    rate = (len(stream) - 1) / (stream[-1] - stream[0])
    assert rate == pytest.approx(12, rel=0.1)
    # the achieved rate the actor reports in the log is the rate of what the log holds
    assert rates and all(rate.value == pytest.approx(12, rel=0.15) for rate in rates)
