"""``twin eval asr``: how well the twin hears labelled recordings — word error rate and entity
exact match of the ``SpeechRecognizer`` actor beside plain faster-whisper, on the same files,
in one run.

A refs file (YAML) groups the recordings in sets, one mission each (its grids, frequencies and
callsigns are what the recogniser knows to look for)::

    sets:
      - name: route_clearance, British male voice
        mission: missions/route_clearance.yaml   # beside the refs file, or in the checkout
        held_out: false                          # true: nothing was tuned on it
        clips:
          - file: route_clearance/gb-m3/02.wav   # relative to --audio DIR
            text: Marker at four nine three zero seven one zero two. Give me the drill, short.
            voice_end: 4.79                      # optional: where the voice ends (s)
            entities:                            # the values said, as the mission writes them
              - {kind: grid, text: 33T VM 4930 7102}

A file with no ``sets`` is one set: ``mission``, ``clips`` (and ``name``, ``held_out``) at the
top. ``spoken`` (what a synthetic voice was given) may be there and is not used.

Each set is heard by a ``SpeechRecognizer`` of its own that knows the set's mission, as in a
session, on a test ``Harness``: every file in turn, with 0.5 s of silence before it and at
least 1.5 s after it (until its turn has ended), as 100 ms ``AudioFrame``s sent as a microphone
sends them (``speed`` times faster if asked; the delays mean something only at 1). Beside it,
plain faster-whisper with the same model, compute type, threads and beam transcribes each whole
file, and ``MissionValues.find`` (the actor's entity finder) reads its text, so that both paths
are judged by the same finder.

Word error rates use ``twin.metrics`` (as ``twin bench asr``): case and punctuation ignored,
whole numbers 0-99 written as words; larger figures stay figures, so a grid said digit by digit
and written "49307102" counts as eight words wrong against "four nine three zero ...". The
entity figures are the measure of values. A labelled entity is found when the path's finals
hold an entity of the same kind with exactly the labelled text (each found entity counts once);
a kind the finder does not report is missed. A line is exact when all its labels are found and
no other entity of a kind the refs file labels was found in it.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from twin.config import ConfigError, Mission, load_mission
from twin.metrics import WordErrors, word_errors
from twin.testing import FRAME_S

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["PATHS", "Clip", "ClipResult", "ClipSet", "EvalError", "Label", "evaluate",
           "format_report", "load_refs", "match_entities", "summarise"]

ACTOR = "speech_recognizer"
PLAIN = "plain_faster_whisper"
PATHS = (ACTOR, PLAIN)
LEAD_IN_S = 0.5  # silence before each file
TAIL_S = 1.5  # silence after it, at least (more rejoins the turn: rejoin_ms)
MAX_WAIT_S = 6.0  # more silence after that, at most, while the turn has not ended
_SET_FIELDS = {"name", "mission", "held_out", "clips"}
_CLIP_FIELDS = {"file", "text", "entities", "voice_end", "spoken"}


class EvalError(ValueError):
    """A refs file or recording that cannot be used: names the file and the field."""


@dataclass(frozen=True)
class Label:
    """An entity: its kind and its written form ("grid", "33T VM 4930 7102")."""

    kind: str
    text: str

    def __str__(self) -> str:
        return f"{self.kind} {self.text}"


@dataclass(frozen=True)
class Clip:
    """One labelled recording."""

    file: str  # as the refs file names it
    path: Path
    text: str
    entities: tuple[Label, ...] = ()
    voice_end: float | None = None  # seconds into the file


@dataclass(frozen=True)
class ClipSet:
    """Recordings of one mission (one speaker, usually)."""

    name: str
    mission_path: Path
    mission: Mission
    held_out: bool
    clips: tuple[Clip, ...]


# ------------------------------------------------------------------------------ reading

def _repository() -> Path:
    import twin

    return Path(twin.__file__).resolve().parents[1]


def _text(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool) \
            or not str(value).strip():
        raise EvalError(f"{where}, field '{name}': a non-empty text is required, got {value!r}")
    return " ".join(str(value).split())


def _labels(value: Any, where: str) -> tuple[Label, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise EvalError(f"{where}, field 'entities': expected a list of {{kind, text}}, "
                        f"got {value!r}")
    labels = []
    for n, item in enumerate(value):
        at = f"{where}, field 'entities[{n}]'"
        if not isinstance(item, dict) or set(item) != {"kind", "text"}:
            raise EvalError(f"{at}: expected {{kind, text}}, got {item!r}")
        labels.append(Label(_text(item["kind"], at, "kind").lower(), _text(item["text"], at,
                                                                             "text")))
    return tuple(labels)


def _mapping(row: Any, fields: set[str], where: str,
             expected: str) -> dict[str, Any]:
    """``row`` if it is a mapping of known fields; else the error naming ``where``."""
    if not isinstance(row, dict):
        raise EvalError(f"{where}: expected a mapping with {expected}")
    unknown = set(row) - fields
    if unknown:
        raise EvalError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))} "
                        f"(fields: {', '.join(sorted(fields))})")
    return row


def _clip(row: Any, where: str, audio: Path) -> Clip:
    row = _mapping(row, _CLIP_FIELDS, where, "file, text, entities")
    name = _text(row.get("file"), where, "file")
    path = audio / name
    if not path.is_file():
        raise EvalError(f"{where}, field 'file': {name}: no such file in {audio}")
    voice_end = row.get("voice_end")
    if voice_end is not None and (isinstance(voice_end, bool)
                                  or not isinstance(voice_end, int | float) or voice_end < 0):
        raise EvalError(f"{where}, field 'voice_end': seconds into the file (a number >= 0), "
                        f"got {voice_end!r}")
    return Clip(name, path, _text(row.get("text"), where, "text"),
                _labels(row.get("entities"), where),
                None if voice_end is None else float(voice_end))


def _mission(value: Any, refs: Path, where: str) -> tuple[Path, Mission]:
    name = _text(value, where, "mission")
    candidates = [Path(name)] if Path(name).is_absolute() else [refs.parent / name,
                                                                 _repository() / name]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise EvalError(f"{where}, field 'mission': {name}: no such file (looked beside the "
                        "refs file and in the twin checkout)")
    try:
        return path, load_mission(path)
    except ConfigError as error:
        problem = str(error).splitlines()[0]
        raise EvalError(f"{where}, field 'mission': {problem}") from None


def load_refs(refs: str | Path, audio: str | Path) -> list[ClipSet]:
    """The sets of a refs file (see the module docstring), every file checked to be in
    ``audio`` and every mission loaded; :class:`EvalError` names the file and field if not."""
    refs, audio = Path(refs), Path(audio)
    if not audio.is_dir():
        raise EvalError(f"--audio {audio}: no such folder")
    try:
        data = yaml.safe_load(refs.read_text())
    except OSError as error:
        raise EvalError(f"{refs}: cannot read: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise EvalError(f"{refs}: not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(data, dict):
        raise EvalError(f"{refs}: expected a mapping with 'sets' (or 'mission' and 'clips')")
    if "sets" in data:
        if set(data) != {"sets"}:
            raise EvalError(f"{refs}: unknown field(s) "
                            f"{', '.join(sorted(map(str, set(data) - {'sets'})))} beside 'sets'")
        rows = data["sets"]
        if not isinstance(rows, list) or not rows:
            raise EvalError(f"{refs}, field 'sets': expected a list of sets")
        named = True
    else:
        rows, named = [data], False
    sets: list[ClipSet] = []
    for n, row in enumerate(rows):
        where = f"{refs}, sets[{n}]" if named else str(refs)
        row = _mapping(row, _SET_FIELDS, where, "name, mission, held_out, clips")
        name = _text(row["name"], where, "name") if named or "name" in row else refs.stem
        if any(s.name == name for s in sets):
            raise EvalError(f"{where}, field 'name': {name!r} names two sets")
        held_out = row.get("held_out", False)
        if not isinstance(held_out, bool):
            raise EvalError(f"{where}, field 'held_out': true or false, got {held_out!r}")
        mission_path, mission = _mission(row.get("mission"), refs, where)
        clips = row.get("clips")
        if not isinstance(clips, list) or not clips:
            raise EvalError(f"{where}, field 'clips': expected a list of clips")
        sets.append(ClipSet(name, mission_path, mission, held_out, tuple(
            _clip(clip, f"{where}, clips[{i}]", audio) for i, clip in enumerate(clips))))
    return sets


# ------------------------------------------------------------------------------ scoring

@dataclass(frozen=True)
class Heard:
    """What one path heard in one file: its text and the entities its finder found."""

    text: str
    entities: tuple[Label, ...] = ()


@dataclass
class ClipResult:
    """One file, heard by both paths."""

    set_name: str
    clip: Clip
    heard: dict[str, Heard]  # by path
    final_after_voice_ms: float | None = None  # actor path: last final after the voice's end
    turns: int = 0  # the actor's final transcripts for this file
    plain_ms: float = 0.0  # plain faster-whisper's wall time on the file

    def to_dict(self, labelled_kinds: set[str]) -> dict[str, Any]:
        clip = self.clip
        out: dict[str, Any] = {"set": self.set_name, "file": clip.file, "reference": clip.text}
        verdicts: dict[str, list[bool]] = {}
        for path in PATHS:
            heard = self.heard[path]
            found, extra = match_entities(clip.entities, heard.entities)
            verdicts[path] = found
            out[path] = {
                "text": heard.text,
                "wer": _rate(word_errors(clip.text, heard.text)),
                "entities": [{"kind": e.kind, "text": e.text} for e in heard.entities],
                "exact": all(found) and not any(e.kind in labelled_kinds for e in extra)}
        out[ACTOR] |= {"turns": self.turns, "final_after_voice_ms": self.final_after_voice_ms}
        out[PLAIN]["ms"] = round(self.plain_ms, 1)
        out["entities"] = [{"kind": label.kind, "text": label.text}
                           | {path: verdicts[path][n] for path in PATHS}
                           for n, label in enumerate(clip.entities)]
        return out


def match_entities(expected: Sequence[Label], found: Sequence[Label]
                   ) -> tuple[list[bool], list[Label]]:
    """Which ``expected`` labels were ``found`` with the same kind and exactly the same text
    (each found entity answers one label), and the found entities no label claimed."""
    left = list(found)
    verdicts = []
    for label in expected:
        hit = label in left
        if hit:
            left.remove(label)
        verdicts.append(hit)
    return verdicts, left


def _rate(errors: WordErrors) -> float | None:
    return round(errors.rate, 4) if errors.words else None


def _fraction(hits: int, total: int) -> dict[str, Any]:
    return {"exact": hits, "of": total, "rate": round(hits / total, 4) if total else None}


def _percentiles(values: list[float]) -> dict[str, float]:
    from twin.bench import percentiles

    return percentiles(values)


def summarise(results: Sequence[ClipResult], labelled_kinds: set[str]) -> dict[str, Any]:
    """Totals over ``results``: per path the pooled word error rate, entity exact match (all
    and by kind), the entities found that no label claimed, lines exact; the actor's final
    transcript delay after the end of the voice (p50/p95, where the voice end is known)."""
    out: dict[str, Any] = {"clips": len(results)}
    for path in PATHS:
        errors = WordErrors(0, 0, 0, 0)
        hits = total = extra_found = exact_lines = 0
        by_kind: dict[str, list[int]] = {}
        for result in results:
            heard = result.heard[path]
            errors += word_errors(result.clip.text, heard.text)
            found, extra = match_entities(result.clip.entities, heard.entities)
            for label, hit in zip(result.clip.entities, found, strict=True):
                tally = by_kind.setdefault(label.kind, [0, 0])
                tally[0] += hit
                tally[1] += 1
            hits += sum(found)
            total += len(found)
            extra_found += len(extra)
            exact_lines += all(found) and not any(e.kind in labelled_kinds for e in extra)
        out[path] = {
            "wer": _rate(errors), "words": errors.words, "word_errors": errors.errors,
            "entities": _fraction(hits, total) | {
                "by_kind": {kind: _fraction(*tally) for kind, tally in sorted(by_kind.items())},
                "unlabelled_found": extra_found},
            "lines_exact": _fraction(exact_lines, len(results))}
    out[ACTOR]["final_after_voice_ms"] = _percentiles(
        [r.final_after_voice_ms for r in results if r.final_after_voice_ms is not None])
    return out


def report(sets: Sequence[ClipSet], results: Sequence[ClipResult],
           setup: dict[str, Any]) -> dict[str, Any]:
    """The whole result: setup, totals (all, tuned, held out), per set, per file."""
    kinds = {label.kind for s in sets for clip in s.clips for label in clip.entities}
    held_out = {s.name for s in sets if s.held_out}
    totals = {"all": summarise(results, kinds)}
    tuned = [r for r in results if r.set_name not in held_out]
    if held_out and tuned:
        totals["not_held_out"] = summarise(tuned, kinds)
        totals["held_out"] = summarise([r for r in results if r.set_name in held_out], kinds)
    return {
        "setup": setup | {"labelled_kinds": sorted(kinds)},
        "totals": totals,
        "sets": [{"name": s.name, "mission": str(s.mission_path), "held_out": s.held_out}
                 | summarise([r for r in results if r.set_name == s.name], kinds)
                 for s in sets],
        "clips": [r.to_dict(kinds) for r in results],
    }


# ------------------------------------------------------------------------------ hearing

def _read(clip: Clip) -> npt.NDArray[np.int16]:
    from actors.audio import AudioError, Resampler, read_wav

    try:
        wav = read_wav(clip.path)
    except AudioError as error:
        raise EvalError(str(error)) from None
    import numpy as np

    return np.asarray(Resampler(wav.sample_rate, wav.channels)(wav.samples, last=True),
                      np.int16)


def evaluate(sets: Sequence[ClipSet], *, model: str = "whisper-tiny.en", speed: float = 1.0,
             mission_vocabulary: bool = False, hypotheses: int | None = None,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Hear every file of ``sets`` through both paths (see the module docstring); the
    :func:`report`. ``mission_vocabulary``: the recogniser leans towards the set's mission's
    names (``SpeechSettings.mission_vocabulary``); plain faster-whisper never does.
    ``hypotheses``: the recogniser's n-best re-ranked by the mission's words
    (``SpeechSettings.hypotheses``, its default if ``None``); plain faster-whisper decodes with
    the recogniser's widest beam, without re-ranking."""
    import numpy as np

    from actors.asr import resolve_model
    from actors.audio import pcm_to_float
    from actors.speech import SpeechRecognizer, SpeechSettings
    from twin.actor import SessionInfo
    from twin.entities import MissionValues
    from twin.messages import SpeechStarted, Transcript
    from twin.testing import Harness, Microphone, final_transcripts

    if not speed > 0:
        raise EvalError(f"--speed must be above 0, got {speed}")
    say = progress or (lambda text: print(f"eval asr: {text}", file=sys.stderr, flush=True))
    audio = {clip.path: _read(clip) for s in sets for clip in s.clips}  # bad files fail first
    chosen = {} if hypotheses is None else {"hypotheses": hypotheses}
    settings = SpeechSettings.model_validate({"model": model,
                                              "mission_vocabulary": mission_vocabulary, **chosen})
    beam = max(settings.beam_size, settings.hypotheses)  # the recogniser's, knowing a mission
    say(f"loading {model} for plain faster-whisper")
    from faster_whisper import WhisperModel

    plain = WhisperModel(resolve_model(model, allow_download=settings.allow_download),
                         device="cpu", compute_type=settings.compute_type,
                         cpu_threads=settings.cpu_threads, local_files_only=True)

    def transcribe(samples: npt.NDArray[np.int16]) -> tuple[str, float]:
        began = time.perf_counter()
        segments, _ = plain.transcribe(pcm_to_float(samples.astype("<i2").tobytes()),
                                       beam_size=beam,
                                       language=settings.language, word_timestamps=True)
        text = " ".join(segment.text.strip() for segment in segments)
        return text, time.perf_counter() - began

    frame = round(FRAME_S * 16000)
    results: list[ClipResult] = []
    total = sum(len(s.clips) for s in sets)

    async def hear(clip_set: ClipSet) -> None:
        values = MissionValues.from_mission(clip_set.mission)
        actor = SpeechRecognizer(settings, name="speech",
                                 session=SessionInfo(mission=clip_set.mission))
        def open_turns(h: Harness, after_turn: int) -> set[int]:
            begun = {m.turn for m in h.probe.messages(SpeechStarted)
                     if m.turn is not None and m.turn > after_turn}
            return begun - {t.turn for t in h.probe.messages(Transcript) if t.final}

        say(f"{clip_set.name}: loading the recogniser ({model}, the VAD, the turn model)")
        async with Harness(actor) as h:
            microphone = Microphone(h, actor, speed=speed)
            for clip in clip_set.clips:
                samples = audio[clip.path]
                say(f"{len(results) + 1}/{total} {clip_set.name}: {clip.file} "
                    f"({len(samples) / 16000:.1f} s)")
                turn = actor.turn
                sent = await microphone.send(np.concatenate([
                    np.zeros(round(LEAD_IN_S * 16000), np.int16), samples,
                    np.zeros(round(TAIL_S * 16000), np.int16)]))
                waited = 0.0
                while open_turns(h, turn) and waited < MAX_WAIT_S:  # the turn has not ended
                    sent += await microphone.send(np.zeros(frame, np.int16))
                    waited += FRAME_S
                heard = final_transcripts(h, turn)
                after_voice = None
                if clip.voice_end is not None and heard:
                    voice_end = LEAD_IN_S + clip.voice_end
                    last = math.ceil(round(voice_end / FRAME_S, 6)) - 1
                    # its frame went out when its last sample was due; the voice ended inside
                    ended_at = sent[last] - ((last + 1) * FRAME_S - voice_end) / speed
                    after_voice = round((heard[-1].t - ended_at) * 1000, 1)
                await asyncio.sleep(0.3)  # let a dropped partial decode finish
                text, seconds = transcribe(samples)
                results.append(ClipResult(
                    clip_set.name, clip,
                    {ACTOR: Heard(" ".join(t.text.strip() for t in heard if t.text.strip()),
                                  tuple(Label(e.kind, e.text) for t in heard
                                        for e in t.entities)),
                     PLAIN: Heard(text, tuple(Label(e.kind, e.text)
                                              for e in values.find(text)))},
                    after_voice, len(heard), seconds * 1000))

    async def run() -> None:
        for clip_set in sets:
            await hear(clip_set)

    asyncio.run(run())
    setup = {
        "model": model, "compute_type": settings.compute_type,
        "beam_size": beam, "hypotheses": settings.hypotheses,
        "cpu_threads": settings.cpu_threads,
        "end_of_turn": settings.end_of_turn, "speed": speed,
        "mission_vocabulary": mission_vocabulary,
        "latency_note": "delays mean something only at --speed 1 (frames sent as a "
                        "microphone sends them)",
        "wer_normaliser": "twin.metrics.normalize_words: lowercase, no punctuation, 0-99 as "
                          "words, larger figures kept",
    }
    return report(sets, results, setup)


# ------------------------------------------------------------------------------ printing

def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def _entities(summary: dict[str, Any]) -> str:
    e = summary["entities"]
    return "-" if not e["of"] else f"{e['exact']}/{e['of']} ({_pct(e['rate'])})"


def _lines(summary: dict[str, Any]) -> str:
    e = summary["lines_exact"]
    return f"{e['exact']}/{e['of']}"


def format_report(figures: dict[str, Any]) -> str:
    """A readable report: each file, then the figures per set and in total."""
    out: list[str] = []
    for clip in figures["clips"]:
        out.append(f"{clip['set']}: {clip['file']}")
        out.append(f"  said:   {clip['reference']}")
        for path, label in ((ACTOR, "actor"), (PLAIN, "plain")):
            heard = clip[path]
            delay = heard.get("final_after_voice_ms")
            extra = f", final {delay:.0f} ms after the voice" if delay is not None else ""
            out.append(f"  {label + ':':7} {heard['text'] or '(nothing)'}   "
                       f"[WER {_pct(heard['wer'])}{extra}]")
        for entity in clip["entities"]:
            marks = ", ".join(f"{name} {'yes' if entity[path] else 'NO'}"
                              for path, name in ((ACTOR, "actor"), (PLAIN, "plain")))
            out.append(f"  entity: {entity['kind']} {entity['text']}: {marks}")
        for path, name in ((ACTOR, "actor"), (PLAIN, "plain")):
            labelled = {(e["kind"], e["text"]) for e in clip["entities"]}
            others = [f"{e['kind']} {e['text']}" for e in clip[path]["entities"]
                      if (e["kind"], e["text"]) not in labelled]
            if others:
                out.append(f"  found by {name}, not labelled: {', '.join(others)}")
    rows = [(s["name"] + (" [held out]" if s["held_out"] else ""), s) for s in figures["sets"]]
    names = {"all": "all", "not_held_out": "all not held out", "held_out": "all held out"}
    rows += [(names[key], summary) for key, summary in figures["totals"].items()]
    width = max(len(name) for name, _ in rows)
    out += ["", f"{'set':{width}}  clips  WER actor / plain     entities actor / plain"
                "            lines exact actor / plain  final after voice p50 / p95 (ms)"]
    for name, s in rows:
        delay = s[ACTOR]["final_after_voice_ms"]
        timing = f"{delay['p50']:.0f} / {delay['p95']:.0f}" if delay.get("n") else "-"
        out.append(f"{name:{width}}  {s['clips']:5}  {_pct(s[ACTOR]['wer']):>8} / "
                   f"{_pct(s[PLAIN]['wer']):<8}  {_entities(s[ACTOR]):>15} / "
                   f"{_entities(s[PLAIN]):<15}  {_lines(s[ACTOR]):>7} / {_lines(s[PLAIN]):<7}"
                   f"                 {timing}")
    kinds = figures["totals"]["all"]
    out += ["", "entity exact match by kind (all sets): actor / plain"]
    for kind, tally in kinds[ACTOR]["entities"]["by_kind"].items():
        plain = kinds[PLAIN]["entities"]["by_kind"][kind]
        out.append(f"  {kind:10} {tally['exact']}/{tally['of']} / {plain['exact']}/{plain['of']}")
    setup = figures["setup"]
    out += ["", f"{setup['model']}, beam {setup['beam_size']}, {setup['cpu_threads']} threads, "
                f"end of turn {setup['end_of_turn']}, speed {setup['speed']:g}"
                + (f", {setup['hypotheses']}-best re-ranked by the mission's words"
                   if setup.get("hypotheses", 1) > 1 else "")
                + (", the mission's vocabulary" if setup.get("mission_vocabulary") else "")
                + ("" if setup["speed"] == 1 else " (the delays mean something only at 1)")]
    return "\n".join(out)
