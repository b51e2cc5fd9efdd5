"""Posture: mediapipe's pose landmarker on the operator's frames, and posture features from it.

A library for the behaviour tracker (which owns the frames).

The model is the registry's ``pose-landmarker``: BlazePose's detector and full landmark model, two
``.tflite`` files taken from the mediapipe 0.10.21 wheel. mediapipe 1.x's Tasks
``PoseLandmarker`` wants them bundled (a zip with ``pose_detector.tflite`` and
``pose_landmarks_detector.tflite``), each with input metadata saying how pixels are normalised
(the detector takes [-1, 1], the landmark model [0, 1]). :func:`pose_bundle` writes that
metadata with mediapipe's own metadata writer and bundles the two in memory at load; nothing is
written to disk and the verified files are never changed. mediapipe 1.x's wheel lacks the
compiled helper that computes the metadata's minimum parser version, so a stand-in module gives
"1.0.0" (the fields written — image normalisation and properties — are 1.0 features).

Posture features (:class:`PostureTracker`), from the 33 image landmarks of the operator's body,
scaled by the shoulder width so they do not depend on the distance to the camera, each against
the operator's own baseline (the median of their first ``baseline_s`` seconds):

- ``lean_forward``: shoulder width over its baseline, minus 1 (> 0: closer to the camera);
- ``shoulder_tilt``: the shoulder line's angle to the horizontal, degrees (a sideways lean);
- ``shoulder_slump``: how far the shoulder line has dropped in the image since the baseline, in
  shoulder widths (> 0: lower, as when slumping in a chair);
- ``head_drop``: how much the nose has come down towards the shoulders since the baseline, in
  shoulder widths (> 0: head lowered);
- ``fidgeting``: mean speed of the nose, shoulders, elbows and wrists (those visible) over the
  last two seconds, in shoulder widths per second (a still operator is near 0).

``visibility`` is the mean visibility of the two shoulders: with it below 0.5 no posture is
reported (the shoulders are out of frame).
"""

from __future__ import annotations

import io
import statistics
import sys
import types
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

NOSE, LEFT_SHOULDER, RIGHT_SHOULDER = 0, 11, 12
MOVING = (0, 11, 12, 13, 14, 15, 16)  # nose, shoulders, elbows, wrists
FIDGET_WINDOW_S = 2.0


def _metadata_writer() -> Any:
    """mediapipe's metadata writer module, with the stand-in version helper it imports."""
    helper = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"
    if helper not in sys.modules:
        module = types.ModuleType(helper)
        module.GetMinimumMetadataParserVersion = lambda *_: "1.0.0"  # type: ignore[attr-defined]
        parents = helper.split(".")
        for depth in range(3, len(parents)):
            sys.modules.setdefault(".".join(parents[:depth]),
                                   types.ModuleType(".".join(parents[:depth])))
        sys.modules[helper] = module
        setattr(sys.modules[".".join(parents[:-1])], parents[-1], module)
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer

    return metadata_writer


def _with_metadata(model: bytes, name: str, mean: float, std: float, outputs: int) -> bytes:
    writer = _metadata_writer().MetadataWriter.create(bytearray(model))
    writer.add_general_info(name).add_image_input(norm_mean=[mean], norm_std=[std])
    for n in range(outputs):
        writer.add_feature_output(name=f"output_{n}")
    populated, _ = writer.populate()
    return bytes(populated)


def pose_bundle(folder: Path) -> bytes:
    """The Tasks model bundle (zip bytes) of the registry's ``pose-landmarker`` files."""
    from mediapipe.tasks.python.metadata.metadata_writers import model_asset_bundle_utils

    detector = _with_metadata((folder / "pose_detection.tflite").read_bytes(), "pose_detector",
                              127.5, 127.5, outputs=2)
    landmarks = _with_metadata((folder / "pose_landmark_full.tflite").read_bytes(),
                               "pose_landmarks_detector", 0.0, 255.0, outputs=5)
    buffer = io.BytesIO()
    with model_asset_bundle_utils.AlignZipFile(buffer, mode="w", alignment=16) as bundle:
        bundle.writestr("pose_detector.tflite", detector)
        bundle.writestr("pose_landmarks_detector.tflite", landmarks)
    return buffer.getvalue()


class PoseAnalyser:
    """mediapipe's PoseLandmarker (VIDEO mode) on RGB frames; one caller at a time."""

    def __init__(self, bundle: bytes, min_confidence: float = 0.5) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.PoseLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=bundle),
            running_mode=vision.RunningMode.VIDEO,
            num_poses=1,
            min_pose_detection_confidence=min_confidence,
            min_pose_presence_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
        )
        self._landmarker = vision.PoseLandmarker.create_from_options(options)
        self._last_ms = -1

    def landmarks(self, frame_rgb: npt.NDArray[np.uint8],
                  t: float) -> npt.NDArray[np.float64] | None:
        """33 x 3 array (x, y in pixels, visibility) of the operator's body, or ``None``."""
        import mediapipe as mp

        stamp = max(int(t * 1000), self._last_ms + 1)  # VIDEO mode: strictly increasing
        self._last_ms = stamp
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=frame_rgb)
        result = self._landmarker.detect_for_video(image, stamp)
        if not result.pose_landmarks:
            return None
        height, width = frame_rgb.shape[:2]
        return np.array([(p.x * width, p.y * height, p.visibility or 0.0)
                         for p in result.pose_landmarks[0]], dtype=np.float64)

    def close(self) -> None:
        self._landmarker.close()


def load_pose_analyser(model: str = "pose-landmarker", min_confidence: float = 0.5) -> PoseAnalyser:
    """A ``PoseAnalyser`` with the registry model ``model`` (``ModelError`` if it is missing)."""
    from twin.models import model_path

    return PoseAnalyser(pose_bundle(model_path(model)), min_confidence)


@dataclass
class PostureTracker:
    """Posture features of successive frames against the operator's own baseline."""

    baseline_s: float = 5.0
    _first_t: float | None = None
    _widths: list[float] = field(default_factory=list)
    _shoulder_ys: list[float] = field(default_factory=list)
    _nose_gaps: list[float] = field(default_factory=list)
    _baseline: tuple[float, float, float] | None = None
    _recent: deque[tuple[float, npt.NDArray[np.float64]]] = field(default_factory=deque)

    def update(self, t: float, points: npt.NDArray[np.float64] | None) -> dict[str, float]:
        """Features of the frame at stream time ``t`` (empty when no body is visible)."""
        if points is None or len(points) < 17:
            self._recent.clear()
            return {}
        left, right, nose = points[LEFT_SHOULDER], points[RIGHT_SHOULDER], points[NOSE]
        visibility = float((left[2] + right[2]) / 2)
        width = float(np.hypot(*(left[:2] - right[:2])))
        if visibility < 0.5 or width < 1e-6:
            self._recent.clear()
            return {}
        shoulder_y = float((left[1] + right[1]) / 2)
        nose_gap = shoulder_y - float(nose[1])  # nose above the shoulders, pixels
        if self._first_t is None:
            self._first_t = t
        if self._baseline is None:
            self._widths.append(width)
            self._shoulder_ys.append(shoulder_y)
            self._nose_gaps.append(nose_gap)
            if t - self._first_t >= self.baseline_s:
                self._baseline = (statistics.median(self._widths),
                                  statistics.median(self._shoulder_ys),
                                  statistics.median(self._nose_gaps))
        base_width, base_y, base_gap = self._baseline or (
            statistics.median(self._widths), statistics.median(self._shoulder_ys),
            statistics.median(self._nose_gaps))
        # Image y grows downwards; the person's left shoulder is on the image right.
        tilt = float(np.degrees(np.arctan2(left[1] - right[1], left[0] - right[0])))
        features = {
            "lean_forward": width / base_width - 1.0,
            "shoulder_tilt": tilt,
            "shoulder_slump": (shoulder_y - base_y) / base_width,
            "head_drop": (base_gap - nose_gap) / base_width,
            "fidgeting": self._fidgeting(t, points[list(MOVING)] / [width, width, 1.0]),
            "visibility": visibility,
        }
        return {name: round(value, 4) for name, value in features.items()}

    def _fidgeting(self, t: float, moving: npt.NDArray[np.float64]) -> float:
        self._recent.append((t, moving))
        while self._recent and self._recent[0][0] < t - FIDGET_WINDOW_S:
            self._recent.popleft()
        if len(self._recent) < 2:
            return 0.0
        path = 0.0
        for (_, a), (_, b) in zip(self._recent, list(self._recent)[1:], strict=False):
            seen = (a[:, 2] >= 0.5) & (b[:, 2] >= 0.5)  # points visible in both frames only
            if seen.any():
                path += float(np.linalg.norm(b[seen, :2] - a[seen, :2], axis=1).mean())
        span = self._recent[-1][0] - self._recent[0][0]
        return path / span if span > 0 else 0.0
