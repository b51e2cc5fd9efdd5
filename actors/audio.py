"""Audio plumbing shared by the audio sources: read a wav, convert to 16 kHz mono, cut frames.

Everything on the bus is 16-bit little-endian PCM, 16 kHz, mono, in ~100 ms ``AudioFrame``s.
``Resampler`` converts any rate and channel count to that (soxr, streaming, so a microphone's
48 kHz stereo is converted as it arrives); ``Framer`` cuts a stream of samples into fixed frames
and keeps the stream time of each; ``read_wav`` reads a PCM wav with a clear ``AudioError`` for a
corrupt, truncated or unsupported file.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16000
MIN_RATE, MAX_RATE = 1000, 768000  # what a wav may have: beyond is a corrupt header
FrameArray = npt.NDArray[np.int16]


class AudioError(RuntimeError):
    """Audio that cannot be read: says which file and what is wrong with it."""


@dataclass(frozen=True)
class WavAudio:
    """A wav file's samples as float32 in [-1, 1], shape (frames, channels)."""

    samples: npt.NDArray[np.float32]
    sample_rate: int
    truncated: bool  # the header promised more frames than the file holds

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


def read_wav(path: str | Path) -> WavAudio:
    """Read a PCM wav (8, 16, 24 or 32 bit, any rate, any channel count)."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        with wave.open(str(path), "rb") as wav:
            width, channels = wav.getsampwidth(), wav.getnchannels()
            rate, promised = wav.getframerate(), wav.getnframes()
            data = wav.readframes(promised)
    except wave.Error as error:
        raise AudioError(f"{path}: not a PCM wav file ({error}); convert it to 16-bit PCM wav, "
                         "e.g. ffmpeg -i IN -ac 1 -ar 16000 -sample_fmt s16 OUT.wav") from None
    except EOFError:
        raise AudioError(f"{path}: the wav header is truncated") from None
    except RuntimeError:  # wave's bare error for a chunk that says it runs past its end
        raise AudioError(f"{path}: a corrupt wav (a chunk runs past the end of the file)"
                         ) from None
    except OSError as error:  # no permission, a read error
        raise AudioError(f"{path}: cannot read the file ({error.strerror or error})") from None
    if channels < 1 or not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"{path}: unsupported wav: {channels} channels at {rate} Hz (expected "
                         f"{MIN_RATE} to {MAX_RATE} Hz)")
    frame_bytes = width * channels
    usable = len(data) - len(data) % frame_bytes
    samples = _to_float(data[:usable], width, path).reshape(-1, channels)
    return WavAudio(samples, rate, truncated=len(samples) < promised)


def _to_float(data: bytes, width: int, path: Path) -> npt.NDArray[np.float32]:
    if width == 1:  # unsigned 8-bit
        return ((np.frombuffer(data, np.uint8).astype(np.float32) - 128) / 128).astype(np.float32)
    if width == 2:
        return (np.frombuffer(data, "<i2").astype(np.float32) / 32768).astype(np.float32)
    if width == 3:
        raw = np.frombuffer(data, np.uint8).reshape(-1, 3)
        wide = (raw[:, 0].astype(np.int32) | raw[:, 1].astype(np.int32) << 8
                | raw[:, 2].astype(np.int32) << 16)
        wide = np.where(wide >= 1 << 23, wide - (1 << 24), wide)
        return (wide / float(1 << 23)).astype(np.float32)
    if width == 4:
        return (np.frombuffer(data, "<i4").astype(np.float64) / 2**31).astype(np.float32)
    raise AudioError(f"{path}: unsupported sample width of {width} bytes")


class Resampler:
    """Streams audio of any rate and channel count to 16 kHz mono int16."""

    def __init__(self, in_rate: int, channels: int = 1) -> None:
        import soxr

        self.in_rate = in_rate
        self.channels = channels
        self._stream = None if in_rate == SAMPLE_RATE else soxr.ResampleStream(
            in_rate, SAMPLE_RATE, 1, dtype="float32")

    def __call__(self, samples: npt.NDArray[np.float32], last: bool = False) -> FrameArray:
        """Convert the next block, shape (n,) or (n, channels), float32 in [-1, 1]."""
        mono = samples if samples.ndim == 1 else samples.mean(axis=1, dtype=np.float32)
        if self._stream is not None:
            mono = self._stream.resample_chunk(np.ascontiguousarray(mono, np.float32), last=last)
        return to_int16(mono)


def to_int16(samples: npt.NDArray[np.floating]) -> FrameArray:
    """Float samples in [-1, 1] to int16, clipping what is outside."""
    return np.clip(np.round(samples * 32767), -32768, 32767).astype(np.int16)


class Framer:
    """Cuts a stream of 16 kHz samples into frames of ``frame_ms``, tracking stream time."""

    def __init__(self, frame_ms: int = 100) -> None:
        self.frame_samples = SAMPLE_RATE * frame_ms // 1000
        self._buffer = np.zeros(0, np.int16)
        self.emitted = 0  # samples already cut into frames

    def push(self, samples: FrameArray) -> list[tuple[float, bytes]]:
        """Add samples; return the complete frames as (stream start time, pcm bytes)."""
        self._buffer = np.concatenate([self._buffer, samples])
        frames = []
        while len(self._buffer) >= self.frame_samples:
            frame, self._buffer = (self._buffer[: self.frame_samples],
                                   self._buffer[self.frame_samples:])
            frames.append((self.emitted / SAMPLE_RATE, frame.astype("<i2").tobytes()))
            self.emitted += self.frame_samples
        return frames

    def flush(self) -> list[tuple[float, bytes]]:
        """The last, partial frame padded with silence (if any samples remain)."""
        if not len(self._buffer):
            return []
        pad = np.zeros(self.frame_samples - len(self._buffer), np.int16)
        return self.push(pad)


def pcm_to_float(pcm: bytes) -> npt.NDArray[np.float32]:
    """16-bit little-endian PCM to float32 in [-1, 1]."""
    return (np.frombuffer(pcm, "<i2").astype(np.float32) / 32768).astype(np.float32)
