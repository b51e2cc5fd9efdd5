"""The small facial-expression model: FER's quantised CNN on the operator's face crop.

A library for the behaviour tracker, which owns the video frames: it crops the operator's face
(the landmarks' bounding box, squared and widened by a margin, as FER crops its own detector's
box), turns it grey, scales it to 64x64 and feeds ``(x / 255 - 0.5) * 2`` to the model
(``fer-emotion`` in ``twin.models``, run with ``ai-edge-litert``, no TensorFlow). The output is a
probability for each of the seven shared labels (``twin.messages.EMOTION_LABELS``).

It is a weak signal (right on happy, often wrong on anger and disgust): the emotion modeller
weighs it as one input among several, never alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

# The model's seven outputs in order (fer's own labels), named as the shared label set.
MODEL_LABELS = ("angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral")
INPUT_SIZE = 64
MARGIN = 0.15  # of the face box's side, added on each side before cropping


def face_crop(frame_bgr: npt.NDArray[np.uint8], box: tuple[float, float, float, float],
              margin: float = MARGIN) -> npt.NDArray[np.uint8] | None:
    """The grey, square, 64x64 crop of ``box`` (x0, y0, x1, y1 in pixels) widened by ``margin``;
    ``None`` when the box lies outside the frame or is too small to say anything (< 16 px)."""
    import cv2

    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    if side < 16:
        return None
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    height, width = frame_bgr.shape[:2]
    left, top = round(cx - side / 2), round(cy - side / 2)
    right, bottom = left + round(side), top + round(side)
    if right <= 0 or bottom <= 0 or left >= width or top >= height:
        return None
    grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
    # Pad with edge pixels where the square runs off the frame, so the face stays centred.
    pad = max(0, -left, -top, right - width, bottom - height)
    if pad:
        grey = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        left, top, right, bottom = left + pad, top + pad, right + pad, bottom + pad
    crop = grey[top:bottom, left:right]
    resized = cv2.resize(crop, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
    return np.asarray(resized, dtype=np.uint8)


class ExpressionClassifier:
    """The quantised FER model in a LiteRT interpreter; one caller at a time."""

    def __init__(self, model_file: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-untyped]

        self._interpreter = Interpreter(model_path=str(model_file), num_threads=1)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        shape = tuple(int(n) for n in self._input["shape"])
        if shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"{model_file}: expected a 64x64 input, the model has {shape}")

    def predict(self, grey_face: npt.NDArray[np.uint8]) -> dict[str, float]:
        """Probabilities of the shared labels for one 64x64 grey face (see ``face_crop``)."""
        x = (grey_face.astype(np.float32) / 255.0 - 0.5) * 2.0
        self._interpreter.set_tensor(self._input["index"], x.reshape(1, INPUT_SIZE, INPUT_SIZE, 1))
        self._interpreter.invoke()
        scores = np.asarray(self._interpreter.get_tensor(self._output["index"]),
                            dtype=np.float64).reshape(-1)
        if scores.shape != (len(MODEL_LABELS),) or not np.all(np.isfinite(scores)):
            return {}
        if scores.min() < 0 or abs(scores.sum() - 1.0) > 0.05:  # logits: make probabilities
            scores = np.exp(scores - scores.max())
            scores /= scores.sum()
        return {label: round(float(p), 4) for label, p in zip(MODEL_LABELS, scores, strict=True)}


def load_classifier(model: str = "fer-emotion") -> ExpressionClassifier:
    """The classifier with the registry model ``model`` (``ModelError`` if it is missing)."""
    from twin.models import model_path

    return ExpressionClassifier(model_path(model) / "emotion_model_quantized.tflite")
