"""Where the behaviour tracker's frames come from, and where they may go: video sources and a
video recorder.

A source is a video file, a camera (an OpenCV index, a ``/dev/video*`` path, or part of the
device's name), or an image sequence (a folder of images, or a glob such as ``shots/*.png``).
Each gives BGR frames with a **stream time**: a file's frame index over its frame rate, an image
sequence's index over the configured rate, a camera's seconds since it was opened. Every method
blocks (OpenCV), so the tracker calls them in a worker thread.

A source that cannot be opened raises ``ActorFailed`` naming the path or the device; a frame that
cannot be decoded comes back as ``None`` and the tracker counts it.

``VideoRecorder`` writes the frames the tracker saw to a video file: recording video is an
explicit configuration choice (``record``); by default nothing but features leaves the tracker.
A recording shows the operator's face: it is created readable by its owner only (0600, its
folder 0700 when the recorder makes it; ``twin.files``).
"""

from __future__ import annotations

import glob
import os
import time
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from twin.actor import ActorFailed
from twin.files import FILE_MODE, private_file

Frame = npt.NDArray[np.uint8]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
V4L_CLASS = Path("/sys/class/video4linux")


class VideoSource(Protocol):
    """Frames with stream times, read one at a time (``grab`` then ``retrieve``)."""

    label: str  # the path or device, for messages
    live: bool  # a camera: its clock is the wall clock and it may stop delivering
    fps: float
    frames: int  # frames expected (0: unknown, e.g. a camera)
    read: int  # frames grabbed so far

    def grab(self) -> float | None:
        """Advance one frame: its stream time, or ``None`` at the end."""

    def retrieve(self) -> Frame | None:
        """The frame last grabbed, or ``None`` if it cannot be decoded."""

    def close(self) -> None: ...


def camera_devices() -> list[tuple[int, str]]:
    """(index, name) of the V4L2 cameras this machine has (Linux; empty elsewhere)."""
    devices = []
    for folder in sorted(V4L_CLASS.glob("video*")):
        try:
            name = (folder / "name").read_text().strip()
            index = int(folder.name.removeprefix("video"))
        except (OSError, ValueError):
            continue
        devices.append((index, name))
    return devices


def resolve_camera(camera: int | str) -> int | str:
    """An OpenCV camera argument for an index, a device path, or part of a device's name."""
    if isinstance(camera, int):
        return camera
    if camera.strip().isdigit():
        return int(camera)
    if camera.startswith("/dev/"):
        return camera
    found = camera_devices()
    for index, name in found:
        if camera.lower() in name.lower():
            return index
    listing = ", ".join(f"{index}: {name}" for index, name in found) or "none"
    raise ActorFailed(f"camera {camera!r}: no camera of that name (cameras here: {listing})")


class CaptureSource:
    """A video file or a camera through OpenCV's ``VideoCapture``."""

    def __init__(self, *, video: str | None = None, camera: int | str | None = None) -> None:
        import cv2

        self.live = video is None
        if video is not None:
            self.label = video
            if not Path(video).is_file():
                raise ActorFailed(f"{video}: no such video file")
            self.capture = cv2.VideoCapture(video)
        else:
            assert camera is not None
            device = resolve_camera(camera)
            self.label = f"camera {camera}"
            self.capture = cv2.VideoCapture(device)
            self.capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a queue
        if not self.capture.isOpened():
            self.capture.release()
            raise ActorFailed(f"{self.label}: cannot open the camera" if self.live else
                              f"{self.label}: cannot open the video (missing codec, not a "
                              "video, or corrupt)")
        fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 1.0 <= fps <= 1000.0 else 30.0
        frames = float(self.capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0)
        if not self.live and frames < 0:  # ffmpeg guessed a raw stream in garbage bytes
            self.capture.release()
            raise ActorFailed(f"{self.label}: not a readable video (no frame count: corrupt?)")
        self.frames = 0 if self.live else int(frames)
        self.read = 0
        self.started = time.monotonic()

    def grab(self) -> float | None:
        if not self.capture.grab():
            return None
        self.read += 1
        return time.monotonic() - self.started if self.live else (self.read - 1) / self.fps

    def retrieve(self) -> Frame | None:
        ok, frame = self.capture.retrieve()
        return np.asarray(frame, dtype=np.uint8) if ok and frame is not None else None

    def close(self) -> None:
        self.capture.release()


class ImageSequence:
    """The images of a folder (sorted by name) or of a glob, played at ``fps``."""

    def __init__(self, pattern: str, fps: float = 30.0) -> None:
        folder = Path(pattern)
        if folder.is_dir():
            paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            paths = sorted(Path(p) for p in glob.glob(pattern)
                           if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise ActorFailed(f"{pattern}: no images (looked for {', '.join(IMAGE_SUFFIXES)})")
        self.label = pattern
        self.live = False
        self.paths = paths
        self.fps = fps
        self.frames = len(paths)
        self.read = 0

    def grab(self) -> float | None:
        if self.read >= len(self.paths):
            return None
        self.read += 1
        return (self.read - 1) / self.fps

    def retrieve(self) -> Frame | None:
        import cv2

        frame = cv2.imread(str(self.paths[self.read - 1]), cv2.IMREAD_COLOR)
        return None if frame is None else np.asarray(frame, dtype=np.uint8)

    def close(self) -> None:
        pass


def open_source(*, video: str | None = None, camera: int | str | None = None,
                images: str | None = None, images_fps: float = 30.0) -> VideoSource:
    """The source named by exactly one of ``video``, ``camera`` and ``images``."""
    if images is not None:
        return ImageSequence(images, images_fps)
    return CaptureSource(video=video, camera=camera)


class VideoRecorder:
    """Writes frames to a video file (MPEG-4 part 2 in an .mp4 or .avi), opened on the first."""

    def __init__(self, path: str, fps: float) -> None:
        self.path = path
        self.fps = fps
        self.written = 0
        self._writer: object | None = None

    def write(self, frame: Frame) -> None:
        import cv2

        if self._writer is None:
            try:  # 0600 before OpenCV writes to it (it truncates the file, keeping its mode)
                private_file(self.path)
            except OSError as error:
                raise ActorFailed(f"{self.path}: cannot write a video file here ({error})"
                                  ) from None
            height, width = frame.shape[:2]
            writer = cv2.VideoWriter(self.path, cv2.VideoWriter.fourcc(*"mp4v"), self.fps,
                                     (width, height))
            if not writer.isOpened():
                raise ActorFailed(f"{self.path}: cannot write a video file here")
            os.chmod(self.path, FILE_MODE)  # in case the writer made the file anew
            self._writer = writer
        self._writer.write(frame)  # type: ignore[attr-defined]
        self.written += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()  # type: ignore[attr-defined]
            self._writer = None


def thumbnail_jpeg(frame: Frame, width: int = 160, quality: int = 70) -> bytes:
    """A small JPEG of a frame (the console's and the review's picture of the operator)."""
    import cv2

    height = max(1, round(frame.shape[0] * width / frame.shape[1]))
    small = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(data.tobytes())
