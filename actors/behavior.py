"""Seeing: the operator's face from a video file or a camera, as ``BehaviorObservation``s.

``BehaviorTracker`` owns its video source (OpenCV ``VideoCapture``) and runs mediapipe's Tasks
API ``FaceLandmarker`` in VIDEO mode with the ``face-landmarker`` model (``twin.models``), one
frame at a time in a worker thread (``asyncio.to_thread``), so the event loop stays free. For
each processed frame it publishes one ``BehaviorObservation``; frames never leave the actor.

Features (pure functions below, usable on frames directly):

- ``face_present`` and the 52 blendshape scores by name (mediapipe's, ``_neutral`` included);
- head ``yaw``/``pitch``/``roll`` in degrees from the facial transformation matrix
  (:func:`head_angles`; R = Rz(roll)·Ry(yaw)·Rx(pitch) in camera space; mirroring the image
  flips the sign of yaw and roll, not pitch);
- ``gaze_x``/``gaze_y`` (:func:`gaze`): where the iris centre sits in each eye, relative to the
  eye's two corners, averaged over both eyes. ``gaze_x`` is the position along the corner-to-
  corner line, -1 at the image-left corner, 0 in the middle, +1 at the image-right corner;
  ``gaze_y`` is the offset across that line, in half eye widths, positive downwards in the
  image. Rough and not corrected for head pose: a direction, not a point of regard;
- ``blink`` (:class:`BlinkCounter`): true on the frame where a closure begins, that is where the
  mean of ``eyeBlinkLeft`` and ``eyeBlinkRight`` rises above ``blink_threshold`` (it must fall
  0.1 below it to count as open again, so one closure is counted once), and ``blink_rate``:
  blinks per minute over the last 60 s of stream time (over the time seen so far, at least 10 s,
  at the start);
- with several faces, the largest (landmark bounding box) is the operator.

Real time: a file is played on its own clock (frame index / fps), scaled by ``speed``. A frame
whose successor is already due when it is read is skipped (counted in ``skipped``), so inference
that falls behind never works on stale frames; ``drop_late=False`` processes every frame
(offline analysis). ``fps_limit`` caps the processed rate in stream time (dropped frames counted
in ``limited``). A camera is read as fast as it delivers, with a one-frame driver buffer.
``health`` reports the achieved rate, processed, skipped and ``done`` (end of the file).

A file or camera that cannot be opened, or a file with no readable frame, fails the actor
(``ActorFailed`` with the path); the runtime's policy then carries the session on without vision.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from twin.actor import Actor, ActorFailed
from twin.messages import BehaviorObservation

FloatArray = npt.NDArray[np.float64]

# Landmarks of the 478-point mesh (mediapipe's face_landmarker): eye corners and iris centres.
RIGHT_EYE = (33, 133, 468)  # the subject's right eye: outer corner, inner corner, iris centre
LEFT_EYE = (362, 263, 473)  # the subject's left eye: inner corner, outer corner, iris centre
BLINK_WINDOW_S = 60.0
BLINK_MIN_SPAN_S = 10.0


# ---------------------------------------------------------------------------- features


def head_angles(matrix: npt.ArrayLike) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a 4x4 (or 3x3) facial transformation matrix.

    The rotation is decomposed as R = Rz(roll)·Ry(yaw)·Rx(pitch) in mediapipe's camera space
    (x to the image right, y up, z towards the viewer)."""
    rotation = np.asarray(matrix, dtype=np.float64)[:3, :3]
    # Remove any scale the matrix carries, column by column.
    rotation = rotation / np.linalg.norm(rotation, axis=0, keepdims=True)
    yaw = math.asin(float(np.clip(-rotation[2, 0], -1.0, 1.0)))
    pitch = math.atan2(float(rotation[2, 1]), float(rotation[2, 2]))
    roll = math.atan2(float(rotation[1, 0]), float(rotation[0, 0]))
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)


def _eye_gaze(points: FloatArray, corner_a: int, corner_b: int, iris: int) -> tuple[float, float]:
    a, b, centre = points[corner_a, :2], points[corner_b, :2], points[iris, :2]
    if a[0] > b[0]:  # a: the image-left corner
        a, b = b, a
    axis = b - a
    width = float(np.linalg.norm(axis))
    if width < 1e-6:
        return 0.0, 0.0
    unit = axis / width
    offset = centre - a
    along = float(offset @ unit) / width  # 0 at a, 1 at b
    normal = np.array([-unit[1], unit[0]])  # image-down when the eye is level
    across = float(offset @ normal) / (width / 2)
    return 2 * along - 1, across


def gaze(points: FloatArray) -> tuple[float, float]:
    """(gaze_x, gaze_y) from landmarks in pixels (N x 2 or N x 3, N = 478); see the module doc."""
    if len(points) <= max(LEFT_EYE + RIGHT_EYE):
        return 0.0, 0.0
    right = _eye_gaze(points, *RIGHT_EYE)
    left = _eye_gaze(points, *LEFT_EYE)
    return (right[0] + left[0]) / 2, (right[1] + left[1]) / 2


def face_area(points: FloatArray) -> float:
    """Area of the landmarks' bounding box (pixels²)."""
    low, high = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    return float(np.prod(high - low))


@dataclass
class BlinkCounter:
    """Counts closures of both eyes once each, with hysteresis, and the rate per minute."""

    threshold: float = 0.5
    hysteresis: float = 0.1
    closed: bool = False
    count: int = 0
    first_t: float | None = None
    times: deque[float] = field(default_factory=deque)

    def update(self, t: float, blendshapes: dict[str, float] | None) -> bool:
        """Feed one frame (``None``: no face); true when a blink begins on this frame."""
        if self.first_t is None:
            self.first_t = t
        began = False
        if blendshapes is None:
            self.closed = False
        else:
            level = (blendshapes.get("eyeBlinkLeft", 0.0)
                     + blendshapes.get("eyeBlinkRight", 0.0)) / 2
            if not self.closed and level > self.threshold:
                self.closed = began = True
                self.count += 1
                self.times.append(t)
            elif self.closed and level < self.threshold - self.hysteresis:
                self.closed = False
        while self.times and self.times[0] < t - BLINK_WINDOW_S:
            self.times.popleft()
        return began

    def rate(self, t: float) -> float:
        """Blinks per minute over the last minute of stream time (see the module doc)."""
        seen = t - (self.first_t if self.first_t is not None else t)
        span = min(BLINK_WINDOW_S, max(BLINK_MIN_SPAN_S, seen))
        return len(self.times) * 60.0 / span


@dataclass(frozen=True)
class FaceFeatures:
    """What the tracker keeps of one face: never pixels."""

    blendshapes: dict[str, float]
    yaw: float
    pitch: float
    roll: float
    gaze_x: float
    gaze_y: float
    area: float


def operator_face(result: Any, width: int, height: int) -> FaceFeatures | None:
    """The largest face of a mediapipe ``FaceLandmarkerResult``, or ``None`` if there is none."""
    faces = list(result.face_landmarks or [])
    if not faces:
        return None
    scale = np.array([width, height, width], dtype=np.float64)
    meshes = [np.array([(p.x, p.y, p.z) for p in face], dtype=np.float64) * scale
              for face in faces]
    areas = [face_area(mesh) for mesh in meshes]
    best = int(np.argmax(areas))
    shapes = result.face_blendshapes or []
    blendshapes = ({c.category_name: round(float(c.score), 4) for c in shapes[best]}
                   if best < len(shapes) else {})
    matrices = result.facial_transformation_matrixes or []
    yaw, pitch, roll = head_angles(matrices[best]) if best < len(matrices) else (0.0, 0.0, 0.0)
    gaze_x, gaze_y = gaze(meshes[best])
    return FaceFeatures(blendshapes, yaw, pitch, roll, gaze_x, gaze_y, areas[best])


class FaceAnalyser:
    """mediapipe's FaceLandmarker (VIDEO mode) on BGR frames; one caller at a time."""

    def __init__(self, model_file: Path, num_faces: int = 2, min_confidence: float = 0.5) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model_file)),
            running_mode=vision.RunningMode.VIDEO,
            num_faces=num_faces,
            min_face_detection_confidence=min_confidence,
            min_face_presence_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        self._landmarker = vision.FaceLandmarker.create_from_options(options)
        self._last_ms = -1

    def detect(self, frame_bgr: npt.NDArray[np.uint8], t: float) -> Any:
        """The raw ``FaceLandmarkerResult`` of one frame at stream time ``t`` (seconds)."""
        import cv2
        import mediapipe as mp

        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)
        stamp = max(int(t * 1000), self._last_ms + 1)  # VIDEO mode: strictly increasing
        self._last_ms = stamp
        return self._landmarker.detect_for_video(image, stamp)

    def analyse(self, frame_bgr: npt.NDArray[np.uint8], t: float) -> FaceFeatures | None:
        height, width = frame_bgr.shape[:2]
        return operator_face(self.detect(frame_bgr, t), width, height)

    def close(self) -> None:
        self._landmarker.close()


def load_analyser(model: str = "face-landmarker", num_faces: int = 2,
                  min_confidence: float = 0.5) -> FaceAnalyser:
    """A ``FaceAnalyser`` with the registry model ``model`` (``ModelError`` if it is missing)."""
    from twin.models import model_path

    return FaceAnalyser(model_path(model) / "face_landmarker.task", num_faces, min_confidence)


# ---------------------------------------------------------------------------- the actor


class BehaviorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    video: str | None = Field(None, description="a video file (exclusive with camera)")
    camera: int | None = Field(None, ge=0, description="an OpenCV camera index")
    fps_limit: float | None = Field(None, gt=0, le=240,
                                    description="process at most this many frames per second of "
                                                "stream time; None: every frame it keeps up with")
    speed: float = Field(1.0, gt=0, le=1000, description="a file's clock: 1 = real time; more "
                                                         "for tests")
    drop_late: bool = Field(True, description="skip frames when inference falls behind the "
                                              "source; False: process every frame (offline)")
    num_faces: int = Field(2, ge=1, le=8, description="faces looked for; the largest is tracked")
    min_confidence: float = Field(0.5, gt=0, lt=1)
    blink_threshold: float = Field(0.5, gt=0, lt=1)
    model: str = "face-landmarker"

    @model_validator(mode="after")
    def _one_source(self) -> BehaviorSettings:
        if (self.video is None) == (self.camera is None):
            raise ValueError("give exactly one of video (a file) or camera (an index)")
        return self


class _Source:
    """An OpenCV capture with a stream clock; every method runs in a worker thread."""

    def __init__(self, settings: BehaviorSettings) -> None:
        import cv2

        self.is_file = settings.video is not None
        self.label = settings.video if settings.video is not None else f"camera {settings.camera}"
        if settings.video is not None:
            path = Path(settings.video)
            if not path.is_file():
                raise ActorFailed(f"{settings.video}: no such video file")
            self.capture = cv2.VideoCapture(str(path))
        else:
            self.capture = cv2.VideoCapture(int(settings.camera or 0))
            self.capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if not self.capture.isOpened():
            self.capture.release()
            raise ActorFailed(f"{self.label}: cannot open the video (missing codec, not a video, "
                              "or corrupt)" if self.is_file else
                              f"{self.label}: cannot open the camera")
        fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 1.0 <= fps <= 1000.0 else 30.0
        frames = float(self.capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0)
        if self.is_file and frames < 0:  # ffmpeg guessed a raw stream in garbage bytes
            self.capture.release()
            raise ActorFailed(f"{self.label}: not a readable video (no frame count: corrupt?)")
        self.frames = int(frames)
        self.read = 0  # frames grabbed
        self.started = time.monotonic()

    def grab(self) -> float | None:
        """Advance one frame; its stream time, or ``None`` at the end (or when the camera
        stops)."""
        if not self.capture.grab():
            return None
        self.read += 1
        if self.is_file:
            return (self.read - 1) / self.fps
        return time.monotonic() - self.started

    def retrieve(self) -> npt.NDArray[np.uint8] | None:
        ok, frame = self.capture.retrieve()
        return np.asarray(frame, dtype=np.uint8) if ok else None

    def close(self) -> None:
        self.capture.release()


class BehaviorTracker(Actor):
    """Watches the operator's face; publishes one ``BehaviorObservation`` per processed frame."""

    Settings: ClassVar[type[BaseModel]] = BehaviorSettings

    @classmethod
    def required_models(cls, settings: BaseModel) -> tuple[str, ...]:
        return (settings.model,) if isinstance(settings, BehaviorSettings) else ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._source: _Source | None = None
        self._opened: _Source | None = None  # kept after closing, for health
        self._analyser: FaceAnalyser | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()  # the capture and the landmarker: one thread at a time
        settings = self.settings
        assert isinstance(settings, BehaviorSettings)
        self._blinks = BlinkCounter(threshold=settings.blink_threshold)
        self.processed = 0
        self.skipped = 0
        self.limited = 0
        self.faces = 0
        self.done = False
        self._infer_s = 0.0
        self._first_wall: float | None = None
        self._last_wall: float | None = None

    async def on_start(self) -> None:
        settings = self.settings
        assert isinstance(settings, BehaviorSettings)
        from twin.models import ModelError

        try:
            self._analyser = await asyncio.to_thread(
                load_analyser, settings.model, settings.num_faces, settings.min_confidence)
        except ImportError:
            raise ActorFailed("mediapipe is not installed: pip install -e '.[vision]'") from None
        except ModelError as error:
            raise ActorFailed(str(error)) from None
        try:
            self._source = self._opened = await asyncio.to_thread(_Source, settings)
        except BaseException:
            await asyncio.to_thread(self._analyser.close)
            self._analyser = None
            raise
        self._task = asyncio.create_task(self._watch(settings), name=f"{self.name}-video")

    # -- in worker threads, under the lock

    def _grab(self) -> float | None:
        with self._lock:
            return self._source.grab() if self._source is not None else None

    def _analyse(self, t: float) -> tuple[FaceFeatures | None, bool]:
        with self._lock:
            if self._source is None or self._analyser is None:
                return None, False
            frame = self._source.retrieve()
            if frame is None:
                return None, False
            began = time.perf_counter()
            features = self._analyser.analyse(frame, t)
            self._infer_s += time.perf_counter() - began
            return features, True

    def _close(self) -> None:
        with self._lock:
            if self._source is not None:
                self._source.close()
                self._source = None
            if self._analyser is not None:
                self._analyser.close()
                self._analyser = None

    # -- on the event loop

    async def _watch(self, settings: BehaviorSettings) -> None:
        source = self._source
        assert source is not None
        started = time.monotonic()
        last_t: float | None = None
        frame_s = 1.0 / source.fps
        min_gap = 1.0 / settings.fps_limit if settings.fps_limit else 0.0
        while True:
            t = await asyncio.to_thread(self._grab)
            if t is None:
                break
            if source.is_file:
                due = started + t / settings.speed
                now = time.monotonic()
                if due > now:
                    await asyncio.sleep(due - now)
                elif settings.drop_late and now >= due + frame_s / settings.speed:
                    self.skipped += 1  # the next frame is already due: this one is stale
                    continue
            if last_t is not None and t - last_t < min_gap - 1e-6:
                self.limited += 1
                continue
            features, ok = await asyncio.to_thread(self._analyse, t)
            if not ok:
                break
            last_t = t
            await self._observe(t, features)
        await self._finish(source)

    async def _observe(self, t: float, face: FaceFeatures | None) -> None:
        wall = time.monotonic()
        if self._first_wall is None:
            self._first_wall = wall
        self._last_wall = wall
        self.processed += 1
        blink = self._blinks.update(t, face.blendshapes if face is not None else None)
        if face is None:
            observation = BehaviorObservation(frame_t=round(t, 3), face_present=False,
                                              blink_rate=round(self._blinks.rate(t), 2))
        else:
            self.faces += 1
            observation = BehaviorObservation(
                frame_t=round(t, 3), face_present=True, blendshapes=face.blendshapes,
                head_yaw=round(face.yaw, 2), head_pitch=round(face.pitch, 2),
                head_roll=round(face.roll, 2), gaze_x=round(face.gaze_x, 3),
                gaze_y=round(face.gaze_y, 3), blink=blink,
                blink_rate=round(self._blinks.rate(t), 2))
        await self.publish(observation)

    async def _finish(self, source: _Source) -> None:
        if not source.is_file:
            await self.fail(ActorFailed(f"{source.label}: the camera stopped delivering frames"))
            return
        if source.read == 0:
            await self.fail(ActorFailed(f"{source.label}: no readable frame (corrupt video?)"))
            return
        if source.frames and source.read < 0.9 * source.frames:
            await self.report_error(RuntimeError(
                f"{source.label}: truncated: {source.read} of {source.frames} frames readable"))
        self.done = True

    async def on_stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await asyncio.to_thread(self._close)

    def on_health(self) -> dict[str, Any]:
        span = (self._last_wall - self._first_wall
                if self._first_wall is not None and self._last_wall is not None else 0.0)
        source = self._opened
        return {
            "source": source.label if source is not None else None,
            "fps": round((self.processed - 1) / span, 1) if span > 0 else 0.0,
            "infer_ms": round(1000 * self._infer_s / self.processed, 2) if self.processed else 0.0,
            "read": source.read if source is not None else None,
            "processed": self.processed,
            "skipped": self.skipped,
            "limited": self.limited,
            "faces": self.faces,
            "blinks": self._blinks.count,
            "done": self.done,
        }


def analyse_frames(frames: Sequence[npt.NDArray[np.uint8]], fps: float = 30.0,
                   model: str = "face-landmarker") -> list[FaceFeatures | None]:
    """Features of a few frames, in order, with a fresh landmarker (tests and tools)."""
    analyser = load_analyser(model)
    try:
        return [analyser.analyse(frame, n / fps) for n, frame in enumerate(frames)]
    finally:
        analyser.close()
