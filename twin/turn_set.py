"""The turn set: operator turns with a known end of voice, to measure when a turn is judged over.

Four groups, each clip 16 kHz mono int16 with the time its voice ends:

- **recorded**: the fixtures' real recordings (``tests/fixtures/speech``: LibriVox read
  sentences, "go forward ten meters"), their voice end measured by ear and eye where the
  fixture gives it, else from the energy envelope (``voice_bounds``);
- **paused**: the same recordings with a pause put inside the sentence, as an operator pauses to
  think: the clip is cut at the quietest 30 ms of the middle half of its voice (a gap between
  words) and 0.3, 0.5 or 0.7 s of the clip's own room noise (its lead-in before the voice,
  repeated) is put there. The turn must not end in that pause;
- **scripted**: a mission's scripted lines spoken by the piper voice (the end of the last word
  comes from the synthesis);
- **held out**: Debian's ``pocketsphinx-testdata`` recordings when installed (``apt-get install
  pocketsphinx-testdata``): card names, digit strings, a short command; with and without a pause
  put in the same way. Nothing was tuned on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["PAUSES_S", "TESTDATA", "TurnClip", "turn_set", "voice_bounds", "with_pause"]

PAUSES_S = (0.3, 0.5, 0.7)  # pauses put inside recorded sentences, in turn
TESTDATA = Path("/usr/share/pocketsphinx/test/data")
_HELD_OUT = ("cards/001.wav", "cards/002.wav", "cards/003.wav", "cards/004.wav",
             "cards/005.wav", "numbers.raw", "something.raw")
_WINDOW_S = 0.01


@dataclass
class TurnClip:
    """One operator turn: 16 kHz mono int16 audio and where its voice ends (seconds in)."""

    name: str
    samples: npt.NDArray[np.int16]
    text: str
    voice_end: float
    group: str = "recorded"
    pause_at: float | None = None  # where a pause was put inside the voice (seconds in)


def _envelope(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.float64]:
    """RMS of each 10 ms window."""
    x = samples.astype(np.float64) / 32768
    n = int(_WINDOW_S * 16000)
    k = len(x) // n
    rms: npt.NDArray[np.float64] = np.sqrt(np.mean(x[: k * n].reshape(k, n) ** 2, axis=1))
    return rms + 1e-9


def voice_bounds(samples: npt.NDArray[np.int16], *, above_db: float = 15.0) -> tuple[float, float]:
    """Where the voice starts and ends (seconds): the first and last 10 ms windows ``above_db``
    over the clip's noise floor (its 10th percentile). Within about 0.1 s of the boundaries
    measured by ear on the fixtures (earlier on quiet word-final sounds)."""
    rms = _envelope(samples)
    loud = np.nonzero(rms > np.percentile(rms, 10) * 10 ** (above_db / 20))[0]
    if not len(loud):
        raise ValueError("no voice in the clip")
    return float(loud[0] * _WINDOW_S), float((loud[-1] + 1) * _WINDOW_S)


def with_pause(clip: TurnClip, pause_s: float, voice_start: float) -> TurnClip:
    """``clip`` with ``pause_s`` of its own room noise put at the quietest 30 ms of the middle
    half of its voice."""
    rms = _envelope(clip.samples)
    first = int((voice_start + 0.25 * (clip.voice_end - voice_start)) / _WINDOW_S)
    last = int((voice_start + 0.75 * (clip.voice_end - voice_start)) / _WINDOW_S)
    quiet = np.convolve(rms[first:last], np.ones(3), "valid")  # 30 ms sums
    cut = int((first + int(np.argmin(quiet)) + 1.5) * _WINDOW_S * 16000)
    room = clip.samples[: max(1, int(voice_start * 16000) - 800)]  # the lead-in, less 50 ms
    pause = np.resize(room, int(pause_s * 16000)).astype(np.int16)
    samples = np.concatenate([clip.samples[:cut], pause, clip.samples[cut:]])
    return TurnClip(f"{clip.name} +{pause_s:.1f}s pause", samples, clip.text,
                    clip.voice_end + pause_s, "paused" if clip.group == "recorded" else
                    f"{clip.group} paused", cut / 16000)


def _recorded() -> list[tuple[TurnClip, float]]:
    from twin.bench import load_speech_clips, speech_fixtures

    clips = []
    for clip in load_speech_clips(speech_fixtures()):
        start, end = clip.voice if clip.voice is not None else voice_bounds(clip.samples)
        clips.append((TurnClip(clip.name, clip.samples, clip.text, end), start))
    return clips


def _held_out() -> list[tuple[TurnClip, float]]:
    from actors.audio import Resampler, read_wav

    clips = []
    for name in _HELD_OUT:
        path = TESTDATA / name
        if not path.is_file():
            continue
        if name.endswith(".raw"):
            samples = np.frombuffer(path.read_bytes(), "<i2").astype(np.int16)
        else:
            wav = read_wav(path)
            samples = Resampler(wav.sample_rate, wav.channels)(wav.samples, last=True)
        start, end = voice_bounds(samples)
        clips.append((TurnClip(f"pocketsphinx {name}", samples, "", end, "held out"), start))
    return clips


def _scripted(mission: Any, voice: str) -> list[TurnClip]:
    from actors.audio import Resampler
    from actors.voices import load_voice

    speaker = load_voice(voice, fallback=False)
    clips = []
    for n, line in enumerate(mission.script, 1):
        synthesis = speaker.synthesize(line.text)
        samples = (np.frombuffer(synthesis.pcm, "<i2") / 32768).astype(np.float32)
        audio = Resampler(synthesis.sample_rate)(samples, last=True)
        end = synthesis.words[-1][2] if synthesis.words else synthesis.duration
        clips.append(TurnClip(f"{mission.name} line {n}", audio, line.text, end, "scripted"))
    return clips


def turn_set(mission: Any | None, *, voice: str = "piper-joe-medium",
             held_out: bool = True) -> list[TurnClip]:
    """The recorded turns, the same with a pause inside, ``mission``'s scripted lines spoken
    (none without a mission), and the held-out recordings (with and without a pause) when
    ``held_out`` and installed."""
    recorded = _recorded()
    clips = [clip for clip, _ in recorded]
    clips += [with_pause(clip, PAUSES_S[n % len(PAUSES_S)], start)
              for n, (clip, start) in enumerate(recorded)]
    if mission is not None:
        clips += _scripted(mission, voice)
    if held_out:
        testdata = _held_out()
        clips += [clip for clip, _ in testdata]
        clips += [with_pause(clip, PAUSES_S[n % len(PAUSES_S)], start)
                  for n, (clip, start) in enumerate(testdata)]
    return clips
