"""Audio sources: a microphone, a recorded file, or a scripted operator speaking with a TTS voice.

Each publishes the operator's voice as ~100 ms ``AudioFrame``s (16 kHz, mono, 16-bit) on the
``operator`` stream, stamped with stream time (seconds since the source began), paced in real time
like a microphone (a frame goes out when its last sample is due, not its first) so that turn
detection and latency behave as they would live:

- ``MicrophoneSource``: PyAudio; the device by index or by (part of) its name, any rate. A
  device that cannot be opened, or that disappears mid-session, fails the actor with a clear
  message (the runtime then carries on without it, by the config's policy);
- ``WavSource``: a PCM wav of any rate and channel count, resampled; ``speed`` > 1 sends faster
  than real time (tests); silence is appended so the last turn ends;
- ``ScriptedOperator``: the mission's scripted operator lines, spoken with a voice from
  ``actors.voices`` at their mission times (so a training mission can run without a human),
  silence in between, as a microphone would give.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from actors.audio import (
    SAMPLE_RATE,
    AudioError,
    FrameArray,
    Framer,
    Resampler,
    pcm_to_float,
    read_wav,
)
from twin.actor import Actor, ActorFailed
from twin.messages import AudioFrame, Message, MissionEvent


class _Paced:
    """Publishes frames at real-time pace (scaled by ``speed``) from a common start."""

    def __init__(self, actor: Actor, stream: str, frame_ms: int, speed: float = 1.0,
                 start_s: float = 0.0) -> None:
        self.actor = actor
        self.stream = stream
        self.frame_s = frame_ms / 1000
        self.speed = speed
        self.framer = Framer(frame_ms)
        self.framer.emitted = round(start_s * SAMPLE_RATE)  # stream time goes on from here
        self.started = time.monotonic()
        self.sent = 0

    async def send(self, samples: FrameArray) -> None:
        for start, pcm in self.framer.push(samples):
            # as a microphone: a frame is there once its last sample has been captured
            due = self.started + (self.sent + 1) * self.frame_s / self.speed
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.actor.publish(AudioFrame(pcm=pcm, start=round(start, 3),
                                                stream=self.stream))
            self.sent += 1


def stream_end(history: Sequence[Message]) -> float:
    """After a restart: the stream time where the source's last published frame ended (its
    stream goes on from there: the recogniser's clock never runs backwards)."""
    frames = [m for m in history if isinstance(m, AudioFrame)]
    if not frames:
        return 0.0
    return frames[-1].start + len(frames[-1].pcm) / 2 / SAMPLE_RATE


# ---------------------------------------------------------------------------- wav file


class WavSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="a PCM wav file, any rate and channel count")
    speed: float = Field(1.0, gt=0, le=100, description="1 = real time; more for tests")
    frame_ms: int = Field(100, ge=10, le=500)
    stream: str = "operator"
    lead_in_s: float = Field(0.5, ge=0, description="silence before the file")
    tail_s: float = Field(1.5, ge=0, description="silence after it, so the last turn ends")


class WavSource(Actor):
    """Plays a wav file onto the bus as if it came from a microphone."""

    Settings: ClassVar[type[BaseModel]] = WavSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._task: asyncio.Task[None] | None = None
        self.done = False
        self._resume_s = 0.0  # after a restart: play on from here, not from the start

    async def recover(self, history: Sequence[Message]) -> None:
        self._resume_s = stream_end(history)

    async def on_start(self) -> None:
        settings = self.settings
        assert isinstance(settings, WavSettings)
        try:
            wav = await asyncio.to_thread(read_wav, settings.path)
        except AudioError as error:
            raise ActorFailed(str(error)) from None
        if wav.truncated:
            await self.report_error(AudioError(
                f"{settings.path}: truncated: the header promises more audio than the file holds;"
                f" playing the {wav.duration:.2f} s that are there"))
        resample = Resampler(wav.sample_rate, wav.channels)
        audio = np.concatenate([
            np.zeros(int(settings.lead_in_s * SAMPLE_RATE), np.int16),
            resample(wav.samples, last=True),
            np.zeros(int(settings.tail_s * SAMPLE_RATE), np.int16),
        ])[round(self._resume_s * SAMPLE_RATE):]
        self._task = asyncio.create_task(self._play(audio, settings))

    async def _play(self, audio: FrameArray, settings: WavSettings) -> None:
        paced = _Paced(self, settings.stream, settings.frame_ms, settings.speed,
                       start_s=self._resume_s)
        await paced.send(audio)
        for start, pcm in paced.framer.flush():
            await self.publish(AudioFrame(pcm=pcm, start=round(start, 3), stream=settings.stream))
        self.done = True

    async def on_stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def on_health(self) -> dict[str, Any]:
        return {"done": self.done}


# ---------------------------------------------------------------------------- microphone


class MicrophoneSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    device: int | str | None = Field(None, description="index, or part of the name; None: the "
                                     "default input (see `twin doctor`)")
    rate: int = Field(16000, ge=8000, le=192000, description="the device's sample rate")
    frame_ms: int = Field(100, ge=10, le=500)
    stream: str = "operator"
    pace: bool = Field(False, description="pace reads in real time (devices with no clock, "
                                          "such as ALSA's file plugin)")


def input_devices() -> list[tuple[int, str, int]]:
    """(index, name, max input channels) of every PyAudio input device."""
    import pyaudio

    audio = pyaudio.PyAudio()
    try:
        devices = []
        for index in range(audio.get_device_count()):
            info = audio.get_device_info_by_index(index)
            if int(info["maxInputChannels"]) > 0:
                devices.append((index, str(info["name"]), int(info["maxInputChannels"])))
        return devices
    finally:
        audio.terminate()


def choose_device(wanted: int | str | None, devices: Sequence[tuple[int, str, int]]) -> int | None:
    """The index of the wanted input device; ``AudioError`` listing the devices if none fits."""
    if wanted is None:
        return None
    for index, name, _ in devices:
        if wanted == index or (isinstance(wanted, str) and wanted.lower() in name.lower()):
            return index
    listing = "; ".join(f"{index}: {name}" for index, name, _ in devices) or "none"
    raise AudioError(f"no input device {wanted!r} (input devices: {listing})")


class MicrophoneSource(Actor):
    """The operator's microphone through PyAudio."""

    Settings: ClassVar[type[BaseModel]] = MicrophoneSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._task: asyncio.Task[None] | None = None
        self._audio: Any = None
        self._stream: Any = None
        self.device = ""
        self._resume_s = 0.0  # after a restart: the stream time goes on from here

    async def recover(self, history: Sequence[Message]) -> None:
        self._resume_s = stream_end(history)

    async def on_start(self) -> None:
        settings = self.settings
        assert isinstance(settings, MicrophoneSettings)
        try:
            import pyaudio
        except ImportError:
            raise ActorFailed("PyAudio is not installed: apt-get install portaudio19-dev, then "
                              "pip install -e '.[audio]' (or use --audio FILE)") from None
        try:
            index = choose_device(settings.device, await asyncio.to_thread(input_devices))
            self._audio = pyaudio.PyAudio()
            info = (self._audio.get_device_info_by_index(index) if index is not None
                    else self._audio.get_default_input_device_info())
            self.device = str(info["name"])
            frames = settings.rate * settings.frame_ms // 1000
            self._stream = self._audio.open(
                format=pyaudio.paInt16, channels=1, rate=settings.rate, input=True,
                input_device_index=index, frames_per_buffer=frames)
        except (OSError, AudioError) as error:
            self._close()
            raise ActorFailed(f"cannot open the microphone {settings.device or 'default'!r}: "
                              f"{error}") from None
        self._task = asyncio.create_task(self._listen(settings, frames))

    async def _listen(self, settings: MicrophoneSettings, frames: int) -> None:
        resample = Resampler(settings.rate, 1)
        paced = _Paced(self, settings.stream, settings.frame_ms,
                       speed=1.0 if settings.pace else 1e9, start_s=self._resume_s)
        try:
            while True:
                data = await asyncio.to_thread(self._stream.read, frames, False)
                samples = pcm_to_float(data)
                await paced.send(resample(samples))
        except OSError as error:  # the device went away
            await self.fail(ActorFailed(f"microphone {self.device!r} stopped: {error}"))

    def _close(self) -> None:
        if self._stream is not None:
            self._stream.stop_stream()
            self._stream.close()
            self._stream = None
        if self._audio is not None:
            self._audio.terminate()
            self._audio = None

    async def on_stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await asyncio.to_thread(self._close)

    def on_health(self) -> dict[str, Any]:
        return {"device": self.device}


# ---------------------------------------------------------------------------- scripted operator


class ScriptedSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    voice: str = Field("piper-joe-medium", description="a voice for actors.voices.load_voice")
    fallback: bool = Field(True, description="speak with espeak-ng if the voice is missing")
    frame_ms: int = Field(100, ge=10, le=500)
    stream: str = "operator"
    min_gap_s: float = Field(2.0, ge=0, description="silence at least between two lines (the "
                             "operator waits for an answer, even on a fast mission clock)")


class ScriptedOperator(Actor):
    """Speaks the mission's scripted operator lines at their mission times."""

    subscribes: ClassVar[tuple[type[Message], ...]] = (MissionEvent,)
    Settings: ClassVar[type[BaseModel]] = ScriptedSettings

    @classmethod
    def required_models(cls, settings: BaseModel) -> tuple[str, ...]:
        from twin.models import REGISTRY

        voice = settings.voice if isinstance(settings, ScriptedSettings) else ""
        return (voice,) if voice in REGISTRY else ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lines: list[tuple[float, FrameArray]] = []  # (mission time, 16 kHz audio)
        self._spoken = 0
        self._mission_start: float | None = None  # wall (monotonic) time of mission T+0
        self._paused_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    async def on_start(self) -> None:
        settings = self.settings
        assert isinstance(settings, ScriptedSettings)
        mission = self.session.mission
        script = [] if mission is None or self.session.mode != "training" else mission.script
        if script:
            lines = [(line.at, line.text) for line in script]
            self._lines = await asyncio.to_thread(self._synthesize, lines)
        self._task = asyncio.create_task(self._speak(settings))

    def _synthesize(self, lines: list[tuple[float, str]]) -> list[tuple[float, FrameArray]]:
        from actors.voices import load_voice

        settings = self.settings
        assert isinstance(settings, ScriptedSettings)
        voice = load_voice(settings.voice, fallback=settings.fallback)
        spoken = []
        for at, text in sorted(lines):
            synthesis = voice.synthesize(text)
            samples = pcm_to_float(synthesis.pcm)
            spoken.append((at, Resampler(synthesis.sample_rate)(samples, last=True)))
        return spoken

    async def on_message(self, message: Message) -> None:
        if not isinstance(message, MissionEvent):
            return
        # Every event says the mission time it happened at: follow the director's clock, also
        # when it jumps (a skipped phase, a phase ended early by its exit condition).
        when = time.monotonic() - max(0.0, time.time() - message.t)
        self._mission_start = when - message.mission_time / self.session.speed
        if message.kind == "paused" or (self._paused_at is not None
                                        and message.kind != "resumed"):
            self._paused_at = when
        elif message.kind == "resumed":
            self._paused_at = None
        if message.kind == "phase_started" and message.reason:  # a jump: skip what it passed
            while (self._spoken < len(self._lines)
                   and self._lines[self._spoken][0] < message.mission_time):
                self._spoken += 1

    def _mission_time(self) -> float | None:
        if self._mission_start is None:
            return None
        now = self._paused_at if self._paused_at is not None else time.monotonic()
        return (now - self._mission_start) * self.session.speed

    async def _speak(self, settings: ScriptedSettings) -> None:
        paced = _Paced(self, settings.stream, settings.frame_ms)
        silence = np.zeros(paced.framer.frame_samples, np.int16)
        quiet_until = 0.0
        while True:
            mission_time = self._mission_time()
            if (self._spoken < len(self._lines) and mission_time is not None
                    and mission_time >= self._lines[self._spoken][0]
                    and time.monotonic() >= quiet_until):
                await paced.send(self._lines[self._spoken][1])
                self._spoken += 1
                quiet_until = time.monotonic() + settings.min_gap_s
            else:
                await paced.send(silence)

    async def on_stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def on_health(self) -> dict[str, Any]:
        return {"lines": len(self._lines), "spoken": self._spoken}
