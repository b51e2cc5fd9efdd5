"""One readable line per message, for the terminal (`twin run`, `twin log`, `twin replay`)."""

from __future__ import annotations

import time

from twin.messages import (
    ActorError,
    AudioFrame,
    BehaviorObservation,
    EmotionEstimate,
    Interrupt,
    Message,
    Metric,
    MissionEvent,
    OperatorState,
    Speech,
    SpeechCut,
    SpeechEnded,
    SpeechStarted,
    TrainerControl,
    Transcript,
    TwinUtterance,
    tag_of,
)


def mission_clock(seconds: float) -> str:
    """``T+MM:SS`` (or ``T+H:MM:SS``) for a mission time in seconds."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"T+{hours}:{minutes:02d}:{secs:02d}" if hours else f"T+{minutes:02d}:{secs:02d}"


def describe(message: Message) -> str:
    """What the message says, in a few words."""
    match message:
        case MissionEvent():
            head = f"{mission_clock(message.mission_time)} {message.kind.replace('_', ' ')}"
            named = message.name and message.kind != "mission_started"
            name = f" [{message.name}]" if named else ""
            flag = f" ({message.priority})" if message.priority != "routine" else ""
            return f"{head}{name}{flag}: {message.text}".rstrip(": ")
        case Transcript():
            if message.typed:
                return f"operator (typed): {message.text}"
            state = "final" if message.final else (
                "at a pause" if message.speculative else "partial")
            return f"operator ({state}, {message.confidence:.2f}): {message.text}"
        case TwinUtterance():
            return f"twin [{message.intent}, {message.confidence:.2f}]: {message.text}"
        case Speech():
            seconds = len(message.pcm) / 2 / message.sample_rate
            return f"speech {seconds:.2f} s, {len(message.visemes)} visemes: {message.text}"
        case AudioFrame():
            seconds = len(message.pcm) / 2 / message.sample_rate / message.channels
            return f"audio {message.stream} {seconds * 1000:.0f} ms at {message.start:.2f} s"
        case SpeechStarted():
            return f"speech started at {message.at:.2f} s"
        case SpeechEnded():
            waited = (f"; turn ended {(message.t - message.voice_end) * 1000:.0f} ms after the "
                      "voice" if message.voice_end else "")
            return f"speech ended at {message.at:.2f} s ({message.duration:.2f} s{waited})"
        case SpeechCut():
            return (f"speech cut in sentence {message.sentence_index} at "
                    f"{message.at_seconds:.2f} s: heard {message.spoken_text!r}")
        case Interrupt():
            return f"interrupt turn {message.target_turn}: {message.reason}"
        case BehaviorObservation():
            face = "face" if message.face_present else "no face"
            return f"behaviour {face}, yaw {message.head_yaw:+.0f}°"
        case EmotionEstimate():
            weights = ", ".join(f"{m.modality} {m.weight:.2f}" for m in message.modalities
                                if m.available)
            return (f"emotion estimate {message.label} {message.confidence:.2f} "
                    f"(valence {message.valence:+.2f}, arousal {message.arousal:+.2f}; "
                    f"{weights or 'no modality'})")
        case OperatorState():
            shift = (f"; shift {message.shift} at {message.shift_utterance!r}"
                     if message.shift else "")
            return (f"operator state {message.label} {message.trend} "
                    f"(valence {message.valence:+.2f}, arousal {message.arousal:+.2f}, "
                    f"stress {message.stress:.2f}{shift})")
        case TrainerControl():
            return f"trainer {message.command} {message.argument}".rstrip()
        case ActorError():
            what = "error" if message.recoverable else "failure"
            action = f" -> {message.action}" if message.action != "none" else ""
            return f"actor {message.actor} {what}: {message.error}{action}"
        case Metric() if message.name == "dialogue_ready_s":
            labels = message.labels
            how = "from its cache" if labels.get("from_cache") == "true" else "reading the mission"
            return (f"the twin is ready: {labels.get('model', 'its model')} took "
                    f"{message.value:.1f} s {how} ({labels.get('notes', 'all')} notes in the "
                    "prompt)")
        case Metric():
            return f"metric {message.name} = {message.value:g} {message.unit}".rstrip()
    return tag_of(type(message))


def line(message: Message, *, start: float | None = None) -> str:
    """A log line: time (relative to ``start`` if given), source, turn and description."""
    if start is None:
        stamp = time.strftime("%H:%M:%S", time.localtime(message.t))
    else:
        stamp = f"{message.t - start:8.3f}"
    turn = f" turn {message.turn}" if message.turn is not None else ""
    return f"{stamp} {message.source:>10}{turn}  {describe(message)}"
