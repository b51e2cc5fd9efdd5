"""``twin bench vision``: sustained frames per second of the behaviour tracker beside mediapipe.

The frames are the 472 frames of a real face video (``tests/fixtures/video``, 640x360) letterboxed
to 640x480 and written once to a temporary MPEG-4 file. In the same run it measures:

- ``mediapipe``: plain ``FaceLandmarker.detect_for_video`` on the frames already decoded in
  memory (the library's own speed, nothing else);
- ``mediapipe + decode``: the same, decoding each frame from the file with OpenCV first (what any
  program reading a video must also do);
- ``tracker``: the ``BehaviorTracker`` actor playing the file as fast as it can
  (``drop_late=False``, every frame processed) with blendshapes, head pose, gaze and blinks, with
  and without the facial-expression model, and with the pose model on every frame too, publishing
  each observation on a ``LocalBus``.

Pinned to one core by default (``os.sched_setaffinity``), as the issue's aim is stated for one
core. The tracker's rate is sustained: from its first observation to its last.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

FIXTURE = "WolfgangLanger_Pexels.mp4"
WIDTH, HEIGHT = 640, 480


def _fixture() -> Path:
    path = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "video" / FIXTURE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the bench's test video is missing (a source checkout "
                                "of twin has it)")
    return path


def _letterboxed_video(source: Path, target: Path) -> tuple[list[Any], float]:
    """Write ``source`` letterboxed to 640x480 into ``target``; the frames, in memory, and the
    frame rate."""
    import cv2
    import numpy as np

    capture = cv2.VideoCapture(str(source))
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 30.0)
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter.fourcc(*"mp4v"), fps, (WIDTH, HEIGHT))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        height, width = frame.shape[:2]
        scale = min(WIDTH / width, HEIGHT / height)
        resized = cv2.resize(frame, (round(width * scale), round(height * scale)))
        canvas = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        top, left = (HEIGHT - resized.shape[0]) // 2, (WIDTH - resized.shape[1]) // 2
        canvas[top:top + resized.shape[0], left:left + resized.shape[1]] = resized
        writer.write(canvas)
        frames.append(canvas)
    capture.release()
    writer.release()
    return frames, fps


def _plain(frames: Iterable[Any], fps: float) -> float:
    """Frames per second of plain FaceLandmarker over ``frames`` (decoding included if the
    iterable decodes)."""
    from actors.behavior import load_analyser

    analyser = load_analyser()
    count = 0
    try:
        began = time.perf_counter()
        for count, frame in enumerate(frames, start=1):
            analyser.detect(frame, (count - 1) / fps)
        return count / (time.perf_counter() - began)
    finally:
        analyser.close()


def _decoded(video: Path) -> Iterator[Any]:
    """The frames of ``video``, decoded by OpenCV one at a time."""
    import cv2
    import numpy as np

    capture = cv2.VideoCapture(str(video))
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield np.asarray(frame, dtype=np.uint8)
    finally:
        capture.release()


def _tracker(video: Path, expression: bool, pose: bool = False) -> dict[str, Any]:
    from actors.behavior import BehaviorTracker
    from twin.testing import Harness

    async def main() -> dict[str, Any]:
        tracker = BehaviorTracker(
            {"video": str(video), "speed": 1000, "drop_late": False,
             "expression_model": "fer-emotion" if expression else None,
             "pose_model": "pose-landmarker" if pose else None, "pose_fps": 240},
            name="behavior")
        began = time.perf_counter()
        async with Harness(tracker):
            while not (tracker.done or tracker.failed):
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - began
            health = tracker.health()
        if health["failed"]:
            raise RuntimeError(f"the tracker failed: {health['failed']}")
        # "fps": sustained, from the first observation to the last (the model's load is not
        # in it); "fps_with_start": from before the actor started.
        return {"fps": health["fps"], "fps_with_start": round(health["processed"] / elapsed, 1),
                "processed": health["processed"], "faces": health["faces"],
                "infer_ms": health["infer_ms"]}

    figures: dict[str, Any] = asyncio.run(main())
    return figures


def run_vision_bench(*, repeats: int = 3, one_core: bool = True,
                     progress: Any = print) -> dict[str, Any]:
    """The figures described in the module docstring, as a dict (medians over ``repeats``)."""
    if one_core and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    with tempfile.TemporaryDirectory(prefix="twin-bench-vision-") as folder:
        video = Path(folder) / "operator-640x480.mp4"
        frames, fps = _letterboxed_video(_fixture(), video)
        plain, decoded, with_fer, without_fer, with_pose = [], [], [], [], []
        for n in range(repeats):
            progress(f"round {n + 1} of {repeats}")
            plain.append(_plain(frames, fps))
            decoded.append(_plain(_decoded(video), fps))
            without_fer.append(_tracker(video, expression=False))
            with_fer.append(_tracker(video, expression=True))
            with_pose.append(_tracker(video, expression=True, pose=True))

    def median_fps(runs: list[dict[str, Any]]) -> float:
        return round(float(statistics.median(run["fps"] for run in runs)), 1)

    plain_fps = round(statistics.median(plain), 1)
    decoded_fps = round(statistics.median(decoded), 1)
    tracker_fps = median_fps(without_fer)
    tracker_fer_fps = median_fps(with_fer)
    tracker_pose_fps = median_fps(with_pose)
    return {
        "video": f"{FIXTURE} letterboxed to {WIDTH}x{HEIGHT}, {len(frames)} frames",
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "repeats": repeats,
        "fps": {
            "mediapipe": plain_fps,
            "mediapipe_with_decode": decoded_fps,
            "tracker": tracker_fps,
            "tracker_with_expression": tracker_fer_fps,
            "tracker_with_expression_and_pose": tracker_pose_fps,
        },
        "ratio_to_mediapipe": {
            "tracker": round(tracker_fps / plain_fps, 3),
            "tracker_with_expression": round(tracker_fer_fps / plain_fps, 3),
            "tracker_with_expression_and_pose": round(tracker_pose_fps / plain_fps, 3),
        },
        "ratio_to_mediapipe_with_decode": {
            "tracker": round(tracker_fps / decoded_fps, 3),
            "tracker_with_expression": round(tracker_fer_fps / decoded_fps, 3),
        },
        "faces_found": {"tracker": without_fer[-1]["faces"], "of": len(frames)},
        "with_pose": "the pose model on every frame (pose_fps 240); by default it is off",
    }
