"""`twin bench turn`: when the twin answers, counted from the true end of the operator's voice.

The turns (``twin.turn_set``): the fixtures' real recordings, the same with a pause put inside
each sentence, and the demo mission's scripted lines spoken by the piper voice. They are joined
into one wav, each followed by a pause for the reply, and played in real time through a whole
session on Ray with the default config and model, as ``twin run --audio`` plays a file (the
mission clock slowed so that no inject interrupts). Each turn's anchor is the wall time of its
clip's last speech sample: the arrival of the frame that holds it (a frame goes out when its
last sample is due) less the rest of that frame. From the session log, every stage counted from
it: the end of the turn decided, the final transcript, the decision, the first sentence, the
first speech audio (published to the gateway and the page). A clip heard as two turns is a
false cut-off; a clip with no final transcript, a missed turn.

``--hearing`` measures the end of turn alone, on the whole turn set (and the held-out
recordings of ``pocketsphinx-testdata`` when installed): the recogniser on its own, fed in real
time, once per ``end_of_turn`` mode; per group, the end of turn's p50 and p95 and the false
cut-offs.

Beside the session, in the same run, the plain script with the same models and an oracle end of
turn: faster-whisper transcribes the whole clip, the chat model (having read the same mission)
writes its first sentence, piper speaks it — so the ratio shows what the runtime and the
end-of-turn wait cost.
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from twin.bench import percentiles
from twin.turn_set import TurnClip, turn_set

__all__ = ["format_hearing_bench", "format_turn_bench", "run_hearing_bench", "run_turn_bench",
           "turn_stages"]

FRAME_S = 0.1  # the wav source's frames
LEAD_IN_S = 15.0  # the session settles (the model reads the mission from its cache) first
PAUSE_S = 14.0  # after each clip: the reply is heard out before the next turn
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")


def _progress(text: str) -> None:
    print(f"bench turn: {text}", file=sys.stderr, flush=True)


def _join(clips: list[TurnClip], lead_in_s: float,
          gap_s: float) -> tuple[npt.NDArray[np.int16], list[tuple[float, float]]]:
    """The clips as one stream, after ``lead_in_s`` of silence and each followed by ``gap_s``;
    each clip's (start, voice end) in stream time."""
    parts = [np.zeros(int(lead_in_s * 16000), np.int16)]
    spans = []
    at = lead_in_s
    for clip in clips:
        spans.append((at, at + clip.voice_end))
        parts += [clip.samples, np.zeros(int(gap_s * 16000), np.int16)]
        at += len(clip.samples) / 16000 + gap_s
    return np.concatenate(parts), spans


def _write_session_audio(clips: list[TurnClip], path: Path) -> list[tuple[float, float]]:
    """One wav of the clips, each after a pause; each clip's (start, voice end) in stream time
    (the wav source adds no lead-in of its own: it is set to 0)."""
    samples, spans = _join(clips, LEAD_IN_S, PAUSE_S)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(samples.tobytes())
    return spans


def turn_stages(messages: list[Any], spans: list[tuple[float, float]]) -> list[dict[str, Any]]:
    """Per clip, from a session log's messages: the anchor (wall time of its last speech
    sample), the turns heard in it, and each stage in ms after the anchor."""
    from twin.messages import (
        AudioFrame,
        Message,
        Metric,
        Speech,
        SpeechEnded,
        SpeechStarted,
        Transcript,
        TwinDecision,
        TwinUtterance,
    )

    frames = sorted((m.start, m.t) for m in messages
                    if isinstance(m, AudioFrame) and m.stream == "operator")
    started = [m for m in messages if isinstance(m, SpeechStarted) and m.stream == "operator"]
    rows = []
    for number, (start, voice_end) in enumerate(spans):
        row: dict[str, Any] = {"clip": number, "turns": []}
        frame = next(((s, t) for s, t in frames if s <= voice_end < s + FRAME_S + 1e-9), None)
        heard = [m for m in started if start - 0.5 <= m.at <= voice_end + 0.3]
        turns = [m.turn for m in heard]
        row["turns"] = turns
        # cut, but the operator's going on made one turn of it (heard whole); and whether the
        # twin began to speak to the first part before that
        said = {m.turn for m in messages if isinstance(m, Speech)}
        row["rejoined"] = len(turns) > 1 and all(
            m.continues == before for m, before in zip(heard[1:], turns, strict=False))
        row["spoke_to_a_part"] = bool(said & set(turns[:-1]))
        if frame is None or not turns:
            rows.append(row)
            continue
        anchor = frame[1] - (frame[0] + FRAME_S - voice_end)
        last: int | None = turns[-1]

        def first(kind: type[Message], last: int | None = last, **where: Any) -> float | None:
            times = [m.t for m in messages if isinstance(m, kind) and m.turn == last
                     and all(getattr(m, k) == v for k, v in where.items())]
            return min(times) if times else None

        ended = [m for m in messages if isinstance(m, SpeechEnded) and m.turn == last]
        sentences = [m.t for m in messages if isinstance(m, TwinUtterance) and m.turn == last
                     and m.text]
        marks = {
            "turn_end": ended[0].t if ended else None,
            "final_transcript": first(Transcript, final=True),
            "decision": first(TwinDecision),
            "first_sentence": min(sentences) if sentences else None,
            "first_audio": first(Speech),
        }
        row["ms"] = {name: None if t is None else round((t - anchor) * 1000, 1)
                     for name, t in marks.items()}
        if ended and ended[0].voice_end:
            row["vad_voice_end_ms"] = round((ended[0].voice_end - anchor) * 1000, 1)
        finals = [m for m in messages if isinstance(m, Transcript) and m.final and m.turn == last]
        row["heard"] = finals[0].text if finals else None
        why = [m for m in messages if isinstance(m, Metric) and m.turn == last
               and m.name in ("end_of_turn_wait_ms", "dialogue_speculation")]
        for metric in why:  # why the turn ended when it did; whether the reply began before
            row[metric.name] = {"value": metric.value, **metric.labels}
        source = [m.labels.get("source") for m in messages if isinstance(m, Metric)
                  and m.turn == last and m.name == "dialogue_first_sentence_ms"]
        row["answered_by"] = source[0] if source else None  # llm, policy, fallback
        rows.append(row)
    return rows


def _session(clips: list[TurnClip], mission_path: Path, config_path: Path,
             folder: Path) -> tuple[list[dict[str, Any]], float]:
    """Play the clips through a session on Ray; the per-clip stages and the ready time."""
    from twin.config import ActorSpec, load_config, load_mission
    from twin.log import LogReader
    from twin.runtime import Session

    audio = folder / "turns.wav"
    spans = _write_session_audio(clips, audio)
    config = load_config(config_path)
    source = {"class": "actors.sources.WavSource", "num_cpus": 0,
              "settings": {"path": str(audio), "lead_in_s": 0.0, "tail_s": 2.0}}
    actors = {**config.actors, "operator_audio": ActorSpec.model_validate(source)}
    config = config.model_copy(update={
        "actors": actors,
        "session": config.session.model_copy(update={"log_dir": folder})})
    mission = load_mission(mission_path)
    seconds = spans[-1][1] + PAUSE_S + 60.0  # the models' start too
    # the mission clock slowed: no inject fires while the clips play (their reports would
    # cross the answers); the turns are what is measured
    session = Session(config, mission, speed=0.02)
    _progress(f"a session on Ray: {len(clips)} turns in {spans[-1][1] + PAUSE_S:.0f} s of "
              "audio, in real time, once the actors are up")
    started = time.monotonic()
    result = asyncio.run(session.run(timeout=seconds))
    with LogReader(result.log_path) as reader:
        messages = list(reader.messages(types=[
            "audio_frame", "speech_started", "speech_ended", "transcript", "twin_decision",
            "twin_utterance", "speech", "metric"]))
    return turn_stages(messages, spans), time.monotonic() - started


def _plain(clips: list[TurnClip], mission_path: Path, config_path: Path) -> list[dict[str, float]]:
    """The plain script per clip: transcribe the whole clip, the first sentence of the chat
    model on the read mission, piper's audio of it; each stage's ms from the start."""
    from actors.asr import WhisperRecognizer
    from actors.chat import PrefixCache, chat_model
    from actors.dialogue import DialogueSettings
    from actors.lipsync import LipSyncSettings
    from actors.speech import SpeechSettings
    from actors.voices import load_voice
    from twin.config import load_config, load_mission
    from twin.prompt import mission_prefix, read_notes

    config = load_config(config_path)
    speech = SpeechSettings.model_validate(config.actors["speech"].settings)
    dialogue = DialogueSettings.model_validate(config.actors["dialogue"].settings)
    recognizer = WhisperRecognizer(speech.model,  # the session's beam, knowing a mission
                                   beam_size=max(speech.beam_size, speech.hypotheses),
                                   cpu_threads=speech.cpu_threads)
    chat = chat_model(dialogue.chat)
    mission = load_mission(mission_path)
    operator = mission.roster[0]
    prefix = mission_prefix(mission, operator, read_notes(mission.knowledge))
    if not PrefixCache().load(chat.client, prefix):
        _progress("the plain model reads the mission first (not timed)")
        chat.invoke([("system", prefix), ("human", "Say ready.")])
    voice = load_voice(LipSyncSettings.model_validate(config.actors["lipsync"].settings).voice)
    rows = []
    for clip in clips:
        audio = (clip.samples / 32768).astype(np.float32)
        began = time.monotonic()
        text = recognizer.recognize(audio).text
        heard = time.monotonic()
        written = ""
        for chunk in chat.stream([("system", prefix), ("human", f"{operator.callsign} asks: "
                                                                 f"{text}")]):
            written += str(chunk.content)
            if _SENTENCE_END.search(written):
                break
        sentence = _SENTENCE_END.split(written)[0] or written
        first = time.monotonic()
        voice.synthesize(sentence)
        spoken = time.monotonic()
        rows.append({"transcribe_ms": (heard - began) * 1000,
                     "first_sentence_ms": (first - began) * 1000,
                     "first_audio_ms": (spoken - began) * 1000})
    return rows


def run_turn_bench(*, mission: str | None = None, config: str | None = None,
                   plain: bool = True, keep: Path | None = None) -> dict[str, Any]:
    """The figures (see the module's docstring) as one JSON-ready dict. ``keep``: the folder
    that keeps the session's log (and the audio played), for ``twin log`` and ``twin review``;
    else they are deleted."""
    import twin

    root = Path(twin.__file__).resolve().parents[1]
    mission_path = Path(mission) if mission else root / "missions" / "route_clearance.yaml"
    config_path = Path(config) if config else root / "configs" / "default.yaml"
    from twin.config import load_mission

    _progress("preparing the turns (recordings, with pauses put inside, and the mission's lines "
              "spoken)")
    clips = turn_set(load_mission(mission_path), held_out=False)
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        rows, wall = _session(clips, mission_path, config_path, keep)
    else:
        with tempfile.TemporaryDirectory(prefix="twin-bench-turn-") as folder:
            rows, wall = _session(clips, mission_path, config_path, Path(folder))
    stages = ("turn_end", "final_transcript", "decision", "first_sentence", "first_audio")
    answered = [r for r in rows if "ms" in r]
    result: dict[str, Any] = {
        "session": {stage: percentiles([r["ms"][stage] for r in answered
                                     if r["ms"][stage] is not None]) for stage in stages},
        "end_of_speech_to_first_audio_ms": percentiles(
            [r["ms"]["first_audio"] for r in answered if r["ms"]["first_audio"] is not None]),
        # the turns the model answered (not the policy's instant "say again", "outside the
        # mission"): what the aims are about
        "model_answered_first_audio_ms": percentiles(
            [r["ms"]["first_audio"] for r in answered if r["ms"]["first_audio"] is not None
             and r.get("answered_by") == "llm"]),
        "false_cut_offs": sum(max(0, len(r["turns"]) - 1) for r in rows),
        "rejoined": sum(1 for r in rows if r.get("rejoined")),
        "spoke_to_a_part": sum(1 for r in rows if r.get("spoke_to_a_part")),
        "missed_turns": sum(1 for r in rows if not r["turns"] or r.get("heard") is None),
        "turns": [{"clip": clips[r["clip"]].name, "group": clips[r["clip"]].group,
                   "said": clips[r["clip"]].text, **{
            k: v for k, v in r.items() if k != "clip"}} for r in rows],
        "setup": {"config": str(config_path), "mission": str(mission_path),
                  "clips": len(clips), "pause_s": PAUSE_S, "session_wall_s": round(wall, 1),
                  "anchor": "the wall time of each clip's last speech sample"},
    }
    if plain:
        _progress("the plain script: whole clip transcribed, first sentence, first audio")
        baseline = _plain(clips, mission_path, config_path)
        result["plain_oracle_end_of_turn"] = {
            key: percentiles([row[key] for row in baseline])
            for key in ("transcribe_ms", "first_sentence_ms", "first_audio_ms")}
        ours = result["end_of_speech_to_first_audio_ms"].get("p50")
        theirs = result["plain_oracle_end_of_turn"]["first_audio_ms"].get("p50")
        if ours and theirs:
            result["ratio_p50"] = round(ours / theirs, 2)
        modelled = result["model_answered_first_audio_ms"].get("p50")
        if modelled and theirs:
            result["ratio_model_p50"] = round(modelled / theirs, 2)
    return result


def format_turn_bench(figures: dict[str, Any]) -> str:
    """The figures as a table: each stage's p50 and p95 after the end of the voice."""
    lines = ["stage (ms after the end of the operator's voice)      p50      p95    n"]
    for stage, row in figures["session"].items():
        lines.append(f"  {stage:50} {row.get('p50', '-'):>8} {row.get('p95', '-'):>8} "
                     f"{row.get('n', 0):>4}")
    model = figures.get("model_answered_first_audio_ms", {})
    lines.append(f"  {'first_audio, the turns the model answered':50} {model.get('p50', '-'):>8} "
                 f"{model.get('p95', '-'):>8} {model.get('n', 0):>4}")
    if "plain_oracle_end_of_turn" in figures:
        lines.append("plain script, oracle end of turn (ms after the clip)")
        for stage, row in figures["plain_oracle_end_of_turn"].items():
            lines.append(f"  {stage:50} {row.get('p50', '-'):>8} {row.get('p95', '-'):>8} "
                         f"{row.get('n', 0):>4}")
    lines.append(f"false cut-offs {figures['false_cut_offs']} (went on as one turn: "
                 f"{figures.get('rejoined', 0)}; the twin began to answer a part: "
                 f"{figures.get('spoke_to_a_part', 0)}), missed turns "
                 f"{figures['missed_turns']}, of {figures['setup']['clips']} turns"
                 + (f"; ratio to the plain script (p50) {figures['ratio_p50']}, the turns the "
                    f"model answered {figures.get('ratio_model_p50', '-')}"
                    if "ratio_p50" in figures else ""))
    return "\n".join(lines)


# ---------------------------------------------------------------------------- hearing only

HEARING_GAP_S = 3.0  # after each clip: longer than any end-of-turn wait


def _hear(clips: list[TurnClip], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Play the clips in real time (each 100 ms frame when its last sample is due) to the
    recogniser alone; per clip, the turns heard and the end of turn and final transcript."""
    import msgspec

    from actors.speech import SpeechRecognizer
    from twin.messages import (
        AudioFrame,
        Message,
        Metric,
        SpeechEnded,
        SpeechStarted,
        Transcript,
    )
    from twin.testing import Harness

    samples, spans = _join(clips, 1.0, HEARING_GAP_S)
    step = int(FRAME_S * 16000)

    async def play() -> list[Message]:
        sent: list[Message] = []
        async with Harness(SpeechRecognizer(settings, name="speech")) as harness:
            began = time.time()
            for n, i in enumerate(range(0, len(samples), step)):
                await asyncio.sleep(max(0.0, began + (n + 1) * FRAME_S - time.time()))
                frame = AudioFrame(pcm=samples[i:i + step].tobytes(), start=n * FRAME_S)
                sent.append(msgspec.structs.replace(frame, t=time.time()))
                await harness.send(frame)
            await asyncio.sleep(1.0)  # the last final transcript
            heard: list[Message] = [*harness.probe.messages(SpeechStarted),
                                    *harness.probe.messages(SpeechEnded),
                                    *harness.probe.messages(Transcript),
                                    *harness.probe.messages(Metric)]
        return sent + heard

    return turn_stages(asyncio.run(play()), spans)


def run_hearing_bench(*, mission: str | None = None,
                      modes: tuple[str, ...] = ("smart", "silence")) -> dict[str, Any]:
    """End of turn and false cut-offs on the whole turn set (``twin.turn_set``), per group,
    with each ``end_of_turn`` mode of the recogniser (default settings otherwise). Each group
    is heard by a recogniser of its own, as one operator: what it learns of one group's pauses
    does not change the next group's figures."""
    import twin
    from twin.config import load_mission

    root = Path(twin.__file__).resolve().parents[1]
    mission_path = Path(mission) if mission else root / "missions" / "route_clearance.yaml"
    clips = turn_set(load_mission(mission_path))
    groups = list(dict.fromkeys(clip.group for clip in clips))
    result: dict[str, Any] = {"setup": {
        "mission": str(mission_path), "clips": len(clips), "groups": {
            group: sum(clip.group == group for clip in clips) for group in groups},
        "anchor": "the wall time of each clip's last speech sample"}, "modes": {}}
    for mode in modes:
        seconds = sum(len(c.samples) / 16000 + HEARING_GAP_S for c in clips)
        _progress(f"end_of_turn: {mode}: {len(clips)} turns in {seconds:.0f} s of audio, in real "
                  "time, each group to a recogniser of its own (an operator: its habits)")
        by_group = {group: _hear([c for c in clips if c.group == group],
                                 {"end_of_turn": mode}) for group in groups}
        rows = [by_group[clip.group].pop(0) for clip in clips]
        figures: dict[str, Any] = {}
        for group in [*groups, "all"]:
            mine = [(clip, row) for clip, row in zip(clips, rows, strict=True)
                    if group in ("all", clip.group)]
            ends = [row["ms"]["turn_end"] for _, row in mine
                    if "ms" in row and row["ms"]["turn_end"] is not None]
            figures[group] = {
                "turn_end_ms": percentiles(ends),
                "false_cut_offs": sum(max(0, len(row["turns"]) - 1) for _, row in mine),
                "rejoined": sum(1 for _, row in mine if row.get("rejoined")),
                "missed_turns": sum(1 for _, row in mine if not row["turns"]),
                "turns": len(mine)}
        figures["clips"] = [{"clip": clip.name, "group": clip.group, "turns": len(row["turns"]),
                             "turn_end_ms": row.get("ms", {}).get("turn_end"),
                             "heard": row.get("heard"), "why": row.get("end_of_turn_wait_ms")}
                            for clip, row in zip(clips, rows, strict=True)]
        result["modes"][mode] = figures
    return result


def format_hearing_bench(figures: dict[str, Any]) -> str:
    """Per mode and group: the end of turn's p50 and p95 after the voice, false cut-offs."""
    lines = ["end of turn (ms after the end of the operator's voice)   p50      p95  "
             "cut-offs (went on as one)  missed  turns"]
    for mode, groups in figures["modes"].items():
        lines.append(f"end_of_turn: {mode}")
        for group, row in groups.items():
            if group == "clips":
                continue
            ends = row["turn_end_ms"]
            lines.append(f"  {group:50} {ends.get('p50', '-'):>8} {ends.get('p95', '-'):>8} "
                         f"{row['false_cut_offs']:>8} ({row.get('rejoined', 0)})"
                         f"{'':>13} {row['missed_turns']:>7} {row['turns']:>6}")
    return "\n".join(lines)
