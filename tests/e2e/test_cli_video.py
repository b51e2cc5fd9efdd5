"""`twin run --video / --camera` as a user runs it: behaviour observations in the log at real
time, and a session that carries on without vision when the video or the camera is bad."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from twin.log import LogReader
from twin.messages import BehaviorObservation, MissionEvent

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MISSION = ROOT / "missions" / "route_clearance.yaml"
VIDEO = ROOT / "tests" / "fixtures" / "video" / "WolfgangLanger_Pexels.mp4"


def seeing_config(tmp_path: Path) -> Path:
    """configs/test.yaml with only the recorder, the mission clock and the (disabled) tracker."""
    config = yaml.safe_load((ROOT / "configs" / "test.yaml").read_text())
    config["actors"] = {name: config["actors"][name] for name in ("recorder", "mission",
                                                                   "behavior")}
    path = tmp_path / "seeing.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def twin_run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    run = subprocess.run([sys.executable, "-m", "twin.cli", "run", str(MISSION), "--config",
                          str(seeing_config(tmp_path)), "--speed", "20", *args],
                         cwd=tmp_path, capture_output=True, text=True, timeout=180)
    match = re.search(r"session log (\S+\.db)", run.stdout)
    assert match, run.stdout + run.stderr
    return run, Path(match.group(1))


def test_run_with_a_video_logs_observations_at_real_time(tmp_path: Path) -> None:
    run, log = twin_run(tmp_path, "--video", str(VIDEO))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ran degraded" not in run.stdout
    with LogReader(log) as reader:
        observations = [m for m in reader.messages(types=["behavior_observation"])
                        if isinstance(m, BehaviorObservation)]
        config = reader.meta()["config"]
    assert config["actors"]["behavior"]["settings"]["video"] == str(VIDEO)
    assert len(observations) > 100
    assert sum(o.face_present for o in observations) >= 0.95 * len(observations)
    stream = np.array([o.frame_t for o in observations])
    wall = np.array([o.t for o in observations])
    # the file plays on its own clock: a second of video takes a second of wall time
    assert (wall[-1] - wall[0]) == pytest.approx(stream[-1] - stream[0], rel=0.1, abs=0.5)


@pytest.mark.parametrize("option", ["--video", "--camera"])
def test_a_bad_video_or_camera_degrades_the_session_and_keeps_the_log(tmp_path: Path,
                                                                       option: str) -> None:
    if option == "--video":
        bad = tmp_path / "broken.mp4"  # not a video at all
        bad.write_bytes(np.random.default_rng(7).integers(0, 256, 100_000, np.uint8).tobytes())
        value = str(bad)
    else:
        value = "7"  # no such camera here
    run, log = twin_run(tmp_path, option, value)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "session ended (mission ended: mission complete)" in run.stdout
    assert "ran degraded, without: behavior" in run.stdout
    with LogReader(log) as reader:
        errors = list(reader.messages(types=["actor_error"]))
        events = [m for m in reader.messages(types=["mission_event"])
                  if isinstance(m, MissionEvent)]
    assert any(value in getattr(e, "error", "") for e in errors)
    assert events[-1].kind == "mission_ended"


def test_run_refuses_a_video_that_is_not_there(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "twin.cli", "run", str(MISSION), "--video",
                          str(tmp_path / "nowhere.mp4")], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2
    assert f"--video {tmp_path / 'nowhere.mp4'}: no such file or folder" in run.stderr
