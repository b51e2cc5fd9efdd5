"""Seeing: the operator's face from a video file, a camera or images, as ``BehaviorObservation``s.

``BehaviorTracker`` owns its video source (``actors.video``: a file, a camera by index, path or
name, or an image sequence) and runs mediapipe's Tasks API ``FaceLandmarker`` in VIDEO mode with
the ``face-landmarker`` model (``twin.models``), one frame at a time in its own worker thread,
so the event loop stays free. For each processed frame it publishes one
``BehaviorObservation``; frames never leave the actor unless the config asks for it
(``thumbnail_every_s``: small JPEG ``VideoThumbnail``s; ``record``: a video file).

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
- with several faces, the largest (landmark bounding box) is the operator, or with
  ``operator: centre`` the one nearest the image centre;
- ``expression``: the small facial-expression model (``actors.expression``, FER's CNN) on the
  operator's face crop, at most ``expression_fps`` times a second of stream time;
- ``posture`` (when ``pose_model`` is set): lean, shoulder tilt and slump, head drop and
  fidgeting from mediapipe's pose landmarker (``actors.pose``), at most ``pose_fps`` a second.

Real time: a file is played on its own clock (frame index / fps), scaled by ``speed``. A frame
whose successor is already due when it is read is skipped (counted in ``skipped``), so inference
that falls behind never works on stale frames; ``drop_late=False`` processes every frame
(offline analysis). ``fps_limit`` caps the processed rate in stream time (dropped frames counted
in ``limited``). A camera is read as fast as it delivers, with a one-frame driver buffer. One
worker thread reads, paces and analyses; the event loop only publishes what it hands over (the
thread waits when more than a few results are pending). ``health`` reports the achieved rate,
processed, skipped, unreadable and ``done`` (end of the file); a ``behavior_fps`` ``Metric``
every 5 s puts the achieved rate and the skip counts in the session log.

A file or camera that cannot be opened, a file with no readable frame, or a camera that stops
delivering fails the actor (``ActorFailed`` with the path or device); the runtime's policy then
carries the session on without vision. A truncated file, or frames that cannot be decoded, are
reported (``ActorError``, recoverable) and the rest is watched.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from actors.expression import ExpressionClassifier, face_crop, load_classifier
from actors.pose import PoseAnalyser, PostureTracker, load_pose_analyser
from actors.video import VideoRecorder, VideoSource, open_source, thumbnail_jpeg
from twin.actor import Actor, ActorFailed
from twin.messages import BehaviorObservation, Metric, VideoThumbnail

FloatArray = npt.NDArray[np.float64]

# Landmarks of the 478-point mesh (mediapipe's face_landmarker): eye corners and iris centres.
RIGHT_EYE = (33, 133, 468)  # the subject's right eye: outer corner, inner corner, iris centre
LEFT_EYE = (362, 263, 473)  # the subject's left eye: inner corner, outer corner, iris centre
BLINK_WINDOW_S = 60.0
BLINK_MIN_SPAN_S = 10.0
RATE_REPORT_S = 5.0  # a Metric "behavior_fps" this often (wall time)


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


def face_box(points: FloatArray) -> tuple[float, float, float, float]:
    """The landmarks' bounding box (x0, y0, x1, y1) in pixels."""
    low, high = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    return float(low[0]), float(low[1]), float(high[0]), float(high[1])


def face_area(points: FloatArray) -> float:
    """Area of the landmarks' bounding box (pixels²)."""
    x0, y0, x1, y1 = face_box(points)
    return (x1 - x0) * (y1 - y0)


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
    box: tuple[float, float, float, float]  # landmarks' bounding box (x0, y0, x1, y1), pixels


OperatorChoice = Literal["largest", "centre"]


def operator_face(result: Any, width: int, height: int,
                  choose: OperatorChoice = "largest") -> FaceFeatures | None:
    """The operator's face in a mediapipe ``FaceLandmarkerResult`` (the largest, or the one
    nearest the image centre), or ``None`` if there is none."""
    faces = list(result.face_landmarks or [])
    if not faces:
        return None
    scale = np.array([width, height, width], dtype=np.float64)
    meshes = [np.array([(p.x, p.y, p.z) for p in face], dtype=np.float64) * scale
              for face in faces]
    areas = [face_area(mesh) for mesh in meshes]
    if choose == "centre":
        centre = np.array([width / 2, height / 2])
        best = int(np.argmin([np.linalg.norm(mesh[:, :2].mean(axis=0) - centre)
                              for mesh in meshes]))
    else:
        best = int(np.argmax(areas))
    shapes = result.face_blendshapes or []
    blendshapes = ({c.category_name: round(float(c.score), 4) for c in shapes[best]}
                   if best < len(shapes) else {})
    matrices = result.facial_transformation_matrixes or []
    yaw, pitch, roll = head_angles(matrices[best]) if best < len(matrices) else (0.0, 0.0, 0.0)
    gaze_x, gaze_y = gaze(meshes[best])
    return FaceFeatures(blendshapes, yaw, pitch, roll, gaze_x, gaze_y, areas[best],
                        face_box(meshes[best]))


class FaceAnalyser:
    """mediapipe's FaceLandmarker (VIDEO mode) on BGR frames; one caller at a time."""

    def __init__(self, model_file: Path, num_faces: int = 2, min_confidence: float = 0.5,
                 choose: OperatorChoice = "largest") -> None:
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
        self.choose: OperatorChoice = choose

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
        return operator_face(self.detect(frame_bgr, t), width, height, self.choose)

    def close(self) -> None:
        self._landmarker.close()


def load_analyser(model: str = "face-landmarker", num_faces: int = 2,
                  min_confidence: float = 0.5, choose: OperatorChoice = "largest") -> FaceAnalyser:
    """A ``FaceAnalyser`` with the registry model ``model`` (``ModelError`` if it is missing)."""
    from twin.models import model_path

    return FaceAnalyser(model_path(model) / "face_landmarker.task", num_faces, min_confidence,
                        choose)


# ---------------------------------------------------------------------------- the actor


class BehaviorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    video: str | None = Field(None, description="a video file")
    camera: int | str | None = Field(None, description="a camera: an OpenCV index, a /dev/video* "
                                                       "path, or part of the device's name")
    images: str | None = Field(None, description="an image sequence: a folder of images or a "
                                                 "glob (played at images_fps)")
    images_fps: float = Field(30.0, gt=0, le=240)
    fps_limit: float | None = Field(None, gt=0, le=240,
                                    description="process at most this many frames per second of "
                                                "stream time; None: every frame it keeps up with")
    speed: float = Field(1.0, gt=0, le=1000, description="a file's clock: 1 = real time; more "
                                                         "for tests")
    drop_late: bool = Field(True, description="skip frames when inference falls behind the "
                                              "source; False: process every frame (offline)")
    num_faces: int = Field(2, ge=1, le=8, description="faces looked for; one is the operator")
    operator: OperatorChoice = Field("largest", description="which face is the operator's: the "
                                     "largest, or the one nearest the image centre")
    min_confidence: float = Field(0.5, gt=0, lt=1)
    blink_threshold: float = Field(0.5, gt=0, lt=1)
    model: str = "face-landmarker"
    expression_model: str | None = Field("fer-emotion", description="the facial-expression "
                                          "model (twin.models) for BehaviorObservation.expression;"
                                          " None: blendshapes only")
    expression_fps: float = Field(5.0, gt=0, le=240, description="run the expression model at "
                                  "most this often (stream time); frames between repeat it")
    pose_model: str | None = Field(None, description="the pose model (twin.models, e.g. "
                                   "pose-landmarker) for BehaviorObservation.posture; None "
                                   "(default): no posture")
    pose_fps: float = Field(10.0, gt=0, le=240, description="run the pose model at most this "
                            "often (stream time); frames between repeat its posture")
    thumbnail_every_s: float | None = Field(None, gt=0, description="publish a small JPEG of "
                                            "the operator this often; None (default): no picture "
                                            "leaves the tracker")
    thumbnail_width: int = Field(160, ge=32, le=640)
    record: str | None = Field(None, description="write the frames the tracker processes to "
                               "this video file (an explicit choice: off by default)")

    @model_validator(mode="after")
    def _one_source(self) -> BehaviorSettings:
        given = [name for name in ("video", "camera", "images") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of video (a file), camera (an index or a name) "
                             f"or images (a folder or a glob); got {given or 'none'}")
        return self


@dataclass
class _Frame:
    """What the worker thread hands back for one processed frame."""

    face: FaceFeatures | None
    expression: dict[str, float]
    posture: dict[str, float]
    thumbnail: bytes | None = None
    thumbnail_size: tuple[int, int] = (0, 0)


# What the worker thread hands the event loop: a processed frame, a failure, or the end.
_Handed = tuple[float, _Frame] | ActorFailed | None


class BehaviorTracker(Actor):
    """Watches the operator's face; publishes one ``BehaviorObservation`` per processed frame."""

    Settings: ClassVar[type[BaseModel]] = BehaviorSettings

    @classmethod
    def required_models(cls, settings: BaseModel) -> tuple[str, ...]:
        if not isinstance(settings, BehaviorSettings):
            return ()
        extra = tuple(name for name in (settings.expression_model, settings.pose_model) if name)
        return (settings.model, *extra)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._source: VideoSource | None = None
        self._opened: VideoSource | None = None  # kept after closing, for health
        self._analyser: FaceAnalyser | None = None
        self._expressions: ExpressionClassifier | None = None
        self._poses: PoseAnalyser | None = None
        self._posture_tracker = PostureTracker()
        self._posture: dict[str, float] = {}
        self._posture_t: float | None = None
        self._recorder: VideoRecorder | None = None
        self._task: asyncio.Task[None] | None = None
        self._worker: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # the capture and the models: one thread at a time
        settings = self.settings
        assert isinstance(settings, BehaviorSettings)
        self._blinks = BlinkCounter(threshold=settings.blink_threshold)
        self._expression: dict[str, float] = {}
        self._expression_t: float | None = None
        self._thumbnail_t: float | None = None
        self.processed = 0
        self.skipped = 0
        self.limited = 0
        self.unreadable = 0
        self.faces = 0
        self.thumbnails = 0
        self.done = False
        self._infer_s = 0.0
        self._first_wall: float | None = None
        self._last_wall: float | None = None
        self._reported_wall: float | None = None
        self._reported_processed = 0

    async def on_start(self) -> None:
        settings = self.settings
        assert isinstance(settings, BehaviorSettings)
        try:
            await asyncio.to_thread(self._load, settings)
            self._source = self._opened = await asyncio.to_thread(
                open_source, video=settings.video, camera=settings.camera,
                images=settings.images, images_fps=settings.images_fps)
        except BaseException:
            await asyncio.to_thread(self._close)
            raise
        if settings.record:
            self._recorder = VideoRecorder(settings.record, self._source.fps)
        self._task = asyncio.create_task(self._watch(settings), name=f"{self.name}-video")

    def _load(self, settings: BehaviorSettings) -> None:
        from twin.models import ModelError

        try:
            self._analyser = load_analyser(settings.model, settings.num_faces,
                                           settings.min_confidence, settings.operator)
            if settings.expression_model:
                self._expressions = load_classifier(settings.expression_model)
            if settings.pose_model:
                self._poses = load_pose_analyser(settings.pose_model, settings.min_confidence)
        except ImportError as error:
            raise ActorFailed(f"{error.name or 'a vision package'} is not installed: "
                              "pip install -e '.[vision]'") from None
        except ModelError as error:
            raise ActorFailed(str(error)) from None

    # -- in the worker thread, under the lock

    def _grab(self) -> float | None:
        with self._lock:
            return self._source.grab() if self._source is not None else None

    def _analyse(self, t: float, settings: BehaviorSettings) -> _Frame | None:
        """Features of the frame last grabbed; ``None`` when it cannot be decoded."""
        with self._lock:
            if self._source is None or self._analyser is None:
                return None
            frame = self._source.retrieve()
            if frame is None:
                return None
            began = time.perf_counter()
            face = self._analyser.analyse(frame, t)
            result = _Frame(face, self._face_expression(frame, face, t, settings),
                            self._body_posture(frame, t, settings))
            self._infer_s += time.perf_counter() - began
            if self._recorder is not None:
                self._recorder.write(frame)
            every = settings.thumbnail_every_s
            if every is not None and (self._thumbnail_t is None or t - self._thumbnail_t >= every):
                self._thumbnail_t = t
                result.thumbnail = thumbnail_jpeg(frame, settings.thumbnail_width)
                height = round(frame.shape[0] * settings.thumbnail_width / frame.shape[1])
                result.thumbnail_size = (settings.thumbnail_width, max(1, height))
            return result

    def _face_expression(self, frame: npt.NDArray[np.uint8], face: FaceFeatures | None,
                         t: float, settings: BehaviorSettings) -> dict[str, float]:
        if face is None or self._expressions is None:
            self._expression, self._expression_t = {}, None
            return {}
        if self._expression_t is None or t - self._expression_t >= 1 / settings.expression_fps:
            crop = face_crop(frame, face.box)
            self._expression = self._expressions.predict(crop) if crop is not None else {}
            self._expression_t = t
        return self._expression

    def _body_posture(self, frame: npt.NDArray[np.uint8], t: float,
                      settings: BehaviorSettings) -> dict[str, float]:
        if self._poses is None:
            return {}
        if self._posture_t is None or t - self._posture_t >= 1 / settings.pose_fps:
            import cv2

            rgb = np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), dtype=np.uint8)
            self._posture = self._posture_tracker.update(t, self._poses.landmarks(rgb, t))
            self._posture_t = t
        return self._posture

    def _close(self) -> None:
        with self._lock:
            if self._source is not None:
                self._source.close()
                self._source = None
            if self._analyser is not None:
                self._analyser.close()
                self._analyser = None
            self._expressions = None
            if self._poses is not None:
                self._poses.close()
                self._poses = None
            if self._recorder is not None:
                self._recorder.close()

    def _read(self, settings: BehaviorSettings, source: VideoSource,
              hand_over: Callable[[_Handed], None], backlog: Callable[[], int]) -> None:
        """The worker thread: read, pace, skip and analyse frames; hand results to the loop.

        One thread does all the blocking work, so inference never waits for the event loop to
        schedule it; the loop only publishes. If the loop falls behind (more than a few results
        waiting), the thread waits too rather than queueing stale observations."""
        started = time.monotonic()
        last_t: float | None = None
        frame_s = 1.0 / source.fps
        min_gap = 1.0 / settings.fps_limit if settings.fps_limit else 0.0
        try:
            while not self._stopping.is_set():
                while backlog() > 4 and not self._stopping.wait(0.002):
                    pass
                t = self._grab()
                if t is None:
                    break
                if not source.live:
                    due = started + t / settings.speed
                    now = time.monotonic()
                    if due > now:
                        self._stopping.wait(due - now)
                    elif settings.drop_late and now >= due + frame_s / settings.speed:
                        self.skipped += 1  # the next frame is already due: this one is stale
                        continue
                if last_t is not None and t - last_t < min_gap - 1e-6:
                    self.limited += 1
                    continue
                result = self._analyse(t, settings)
                if result is None:
                    self.unreadable += 1
                    continue
                last_t = t
                hand_over((t, result))
        except ActorFailed as error:  # e.g. the recorder cannot write
            hand_over(error)
            return
        except Exception as error:
            hand_over(ActorFailed(f"{source.label}: {type(error).__name__}: {error}"))
            return
        hand_over(None)

    # -- on the event loop

    async def _watch(self, settings: BehaviorSettings) -> None:
        source = self._source
        assert source is not None
        loop = asyncio.get_running_loop()
        results: asyncio.Queue[_Handed] = asyncio.Queue()

        def hand_over(item: _Handed) -> None:
            loop.call_soon_threadsafe(results.put_nowait, item)

        self._worker = threading.Thread(target=self._read, name=f"{self.name}-video",
                                        args=(settings, source, hand_over, results.qsize),
                                        daemon=True)
        self._worker.start()
        while True:
            item = await results.get()
            if item is None:
                break
            if isinstance(item, ActorFailed):
                await self.fail(item)
                return
            await self._observe(*item)
        await self._finish(source)

    async def _observe(self, t: float, result: _Frame) -> None:
        wall = time.monotonic()
        if self._first_wall is None:
            self._first_wall = wall
        self._last_wall = wall
        self.processed += 1
        face = result.face
        blink = self._blinks.update(t, face.blendshapes if face is not None else None)
        if face is None:
            observation = BehaviorObservation(frame_t=round(t, 3), face_present=False,
                                              blink_rate=round(self._blinks.rate(t), 2),
                                              posture=result.posture)
        else:
            self.faces += 1
            observation = BehaviorObservation(
                frame_t=round(t, 3), face_present=True, blendshapes=face.blendshapes,
                head_yaw=round(face.yaw, 2), head_pitch=round(face.pitch, 2),
                head_roll=round(face.roll, 2), gaze_x=round(face.gaze_x, 3),
                gaze_y=round(face.gaze_y, 3), blink=blink,
                blink_rate=round(self._blinks.rate(t), 2), expression=result.expression,
                posture=result.posture)
        await self.publish(observation)
        if wall - (self._reported_wall or self._first_wall) >= RATE_REPORT_S:
            await self._report_rate(wall)
        if result.thumbnail is not None:
            self.thumbnails += 1
            width, height = result.thumbnail_size
            await self.publish(VideoThumbnail(frame_t=round(t, 3), jpeg=result.thumbnail,
                                              width=width, height=height))

    async def _report_rate(self, wall: float) -> None:
        """The achieved rate since the last report, and what was skipped, into the log."""
        since = self._reported_wall or self._first_wall or wall
        processed = self.processed - self._reported_processed
        if wall > since and processed > 0:
            await self.publish(Metric(
                name="behavior_fps", value=round(processed / (wall - since), 2), unit="fps",
                labels={"processed": str(self.processed), "skipped": str(self.skipped),
                        "limited": str(self.limited), "unreadable": str(self.unreadable)}))
        self._reported_wall, self._reported_processed = wall, self.processed

    async def _finish(self, source: VideoSource) -> None:
        if source.live:
            await self.fail(ActorFailed(f"{source.label}: the camera stopped delivering frames"))
            return
        if self.processed == 0 and (source.read == 0 or self.unreadable >= source.read):
            await self.fail(ActorFailed(f"{source.label}: no readable frame (corrupt video?)"))
            return
        if source.frames and source.read < 0.9 * source.frames:
            await self.report_error(RuntimeError(
                f"{source.label}: truncated: {source.read} of {source.frames} frames readable"))
        if self.unreadable:
            await self.report_error(RuntimeError(
                f"{source.label}: {self.unreadable} of {source.read} frames could not be decoded"))
        self.done = True

    async def on_stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._worker is not None:
            await asyncio.to_thread(self._worker.join, 10.0)
            self._worker = None
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
            "unreadable": self.unreadable,
            "faces": self.faces,
            "blinks": self._blinks.count,
            "thumbnails": self.thumbnails,
            "recorded": self._recorder.written if self._recorder is not None else 0,
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
