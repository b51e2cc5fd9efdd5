"""The after-action review of a session log: turns, decisions, stage latency, affect, shifts,
objectives, the HTML report, the JSON and CSV exports, and logs that are old, cut short or
missing."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import time
from html.parser import HTMLParser
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from twin.cli import app
from twin.log import SessionLog
from twin.messages import (
    EmotionEstimate,
    EvidenceRef,
    Message,
    Metric,
    MissionEvent,
    ModalityEstimate,
    OperatorState,
    Speech,
    SpeechCut,
    SpeechEnded,
    SpeechStarted,
    Transcript,
    TwinDecision,
    TwinUtterance,
)
from twin.review import check_speed, read_session
from twin.review.export import to_json, write_csv
from twin.review.report import render_html

pytestmark = pytest.mark.unit

T0 = 1_800_000_000.0
MISSION = {
    "name": "drill", "title": "Review drill",
    "phases": [{"id": "brief", "title": "Brief"}, {"id": "work", "title": "Work"}],
    "objectives": [{"id": "ready", "text": "Say you are ready", "phase": "brief"},
                   {"id": "done", "text": "Finish the work", "phase": "work"}],
}


def at(seconds: float, message: Message, source: str = "x", seq: int = 0) -> Message:
    return msgspec.structs.replace(message, t=T0 + seconds, source=source, seq=seq,
                                   session="s1")


def event(seconds: float, kind: str, name: str, mission_time: float, **extra: object) -> Message:
    return at(seconds, MissionEvent(kind=kind, mission="drill", mission_time=mission_time,  # type: ignore[arg-type]
                                    name=name, **extra), source="mission")  # type: ignore[arg-type]


def operator_turn(turn: int, start: float, text: str, reply: list[str]) -> list[Message]:
    """A whole operator turn: speech, transcript, decision, reply sentences, speech audio."""
    said = [
        at(start, SpeechStarted(at=start, turn=turn), "speech"),
        at(start + 0.5, Transcript(text=text[:5], final=False, turn=turn), "speech"),
        # the voice ended 0.5 s before the end of the turn was decided
        at(start + 2.0, SpeechEnded(at=start + 1.5, duration=1.5, turn=turn,
                                    voice_end=T0 + start + 1.5), "speech"),
        at(start + 2.4, Transcript(text=text, final=True, confidence=0.9, turn=turn), "speech"),
        at(start + 2.5, TwinDecision(
            trigger="question", intent="answer", style="brief", hedge=False, confidence=0.8,
            question=text, reasons=["a question: answer", "top evidence notes#1"],
            evidence=[EvidenceRef(id="notes#1", source="notes.md", score=0.81,
                                  text="Fuel is at 40 %.")], turn=turn), "dialogue"),
    ]
    for index, sentence in enumerate(reply):
        said.append(at(start + 2.9 + index * 0.3, TwinUtterance(
            text=sentence, index=index, final=index == len(reply) - 1, intent="answer",
            confidence=0.8, turn=turn), "dialogue"))
    said.append(at(start + 3.3, Speech(text=reply[0], index=0, final=False, pcm=b"\0\0" * 10,
                                       turn=turn), "lipsync"))
    return said


def emotion(seconds: float, turn: int, valence: float, label: str = "neutral") -> Message:
    return at(seconds, EmotionEstimate(
        label=label, probabilities={label: 0.7}, valence=valence, arousal=0.2, confidence=0.6,
        modalities=[
            ModalityEstimate(modality="text", probabilities={label: 0.8}, valence=valence,
                             arousal=0.1, confidence=0.7, weight=0.6),
            ModalityEstimate(modality="voice", probabilities={"neutral": 0.6}, valence=0.0,
                             arousal=0.3, confidence=0.5, weight=0.4),
            ModalityEstimate(modality="face", probabilities={}, valence=0.0, arousal=0.0,
                             confidence=0.0, available=False),
        ], turn=turn), "emotion")


def session_messages(with_affect: bool = True) -> list[Message]:
    messages: list[Message] = [
        event(0, "mission_started", "drill", 0, text="Review drill"),
        event(0.01, "phase_started", "brief", 0, text="Brief. Get ready."),
        event(5, "inject", "fuel", 15, text="fuel at 40 %", reason="the operator said 'fuel'"),
        event(6, "inject", "fire", 18, text="fire in bay 2", priority="flash"),
        *operator_turn(1, 8, "What is our fuel state?", ["Fuel is at 40 %.", "Refuel soon."]),
        event(12, "objective_met", "ready", 36, text="Objective met: Say you are ready",
              reason="the operator said 'ready' (turn 1)"),
        event(12.1, "phase_started", "work", 60, text="Work.", reason="phase 'brief' ended early"),
        *operator_turn(2, 20, "Fire in bay two, what now?", ["Evacuate bay 2."]),
        at(21, TwinDecision(trigger="report", intent="report", style="brief", hedge=False,
                            confidence=1.0, question="fire in bay 2", turn=1_000_001),
           "dialogue"),
        at(21.2, TwinUtterance(text="Fire in bay 2.", index=0, final=True, intent="report",
                               turn=1_000_001), "dialogue"),
        at(21.9, SpeechCut(spoken_text="Fire in", sentence_index=0, at_seconds=0.4,
                           turn=1_000_001), "lipsync"),
        event(30, "mission_ended", "drill", 90, text="mission complete"),
    ]
    if with_affect:
        messages += [
            emotion(10.6, 1, 0.1),
            at(10.7, OperatorState(label="neutral", valence=0.1, arousal=0.2, confidence=0.6,
                                   turn=1), "emotion"),
            emotion(22.6, 2, -0.6, "fearful"),
            at(22.7, OperatorState(label="fearful", valence=-0.4, arousal=0.5, confidence=0.6,
                                   trend="worsening", shift="neutral->fearful", turn=2,
                                   shift_turn=2, shift_twin_utterance="Refuel soon."),
               "emotion"),
        ]
    return sorted(messages, key=lambda m: m.t)


def write_log(path: Path, messages: list[Message], meta: dict[str, object] | None = None) -> Path:
    log = SessionLog.create(path, meta if meta is not None else {
        "session": "s1", "mission_name": "drill", "mode": "training", "speed": 2.0,
        "mission": MISSION})
    log.append(messages)
    log.close()
    return path


class Tables(HTMLParser):
    """Rows of each table (by id) of a page, and whether it fetches anything."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[dict[str, str | None]]] = {}
        self.table: str | None = None
        self.in_body = False
        self.svgs = 0
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "table":
            self.table = values.get("id") or ""
            self.rows[self.table] = []
        elif tag == "tbody":
            self.in_body = True
        elif tag == "tr" and self.in_body and self.table is not None:
            self.rows[self.table].append(values)
        elif tag == "svg":
            self.svgs += 1
        elif tag in ("script", "img", "link", "iframe"):
            self.external.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self.in_body = False
        elif tag == "table":
            self.table = None


def test_turns_decisions_and_stage_latency_come_from_the_log(tmp_path: Path) -> None:
    review = read_session(write_log(tmp_path / "s1.db", session_messages()))
    assert review.notes == [] and review.ended and review.end_reason == "mission complete"
    assert review.mode == "training" and review.speed == 2.0 and review.title == "Review drill"
    turns = {t.turn: t for t in review.turns}
    assert sorted(turns) == [1, 2, 1_000_001]
    first = turns[1]
    assert first.kind == "operator" and first.operator_text == "What is our fuel state?"
    assert first.intent == "answer" and first.confidence == 0.8 and first.hedge is False
    assert first.reply == "Fuel is at 40 %. Refuel soon." and first.sentences == 2
    assert [e.id for e in first.evidence] == ["notes#1"] and "top evidence" in first.reasons[1]
    assert first.start == pytest.approx(8.0) and first.emotion == "neutral"
    assert first.latency == pytest.approx({"turn_end": 0.5, "transcribe": 0.4, "decide": 0.1,
                                           "phrase": 0.4, "voice": 0.4, "total": 1.8})
    report = turns[1_000_001]
    assert report.kind == "report" and report.cut.startswith("interrupted (barge-in)")
    assert "total" not in report.latency
    assert [(p.id, p.start, p.end) for p in review.phases] == [
        ("brief", 0.01, 12.1), ("work", 12.1, 30.0)]
    assert review.phases[1].note == "phase 'brief' ended early"
    objectives = {o.id: o for o in review.objectives}
    assert objectives["ready"].met and objectives["ready"].t == pytest.approx(12.0)
    assert not objectives["done"].met
    moments = "\n".join(review.moments)
    assert "flash inject [fire]" in moments and "inject [fuel] because" in moments
    assert "emotion shift neutral->fearful" in moments
    assert "objectives met: 1 of 2" in moments and "the mission ended" in moments


def test_affect_per_modality_and_shifts_with_the_words_around_them(tmp_path: Path) -> None:
    review = read_session(write_log(tmp_path / "s1.db", session_messages()))
    estimates = [a for a in review.affect if a.kind == "estimate"]
    assert [e.valence for e in estimates] == [0.1, -0.6]
    text = next(v for v in estimates[1].modalities if v.modality == "text")
    assert text.label == "fearful" and text.weight == 0.6
    assert not next(v for v in estimates[1].modalities if v.modality == "face").available
    (shift,) = review.shifts
    assert shift.shift == "neutral->fearful" and shift.turn == 2
    assert shift.before == "What is our fuel state?"
    assert shift.said == "Fire in bay two, what now?" and shift.reply == "Evacuate bay 2."
    assert shift.twin_before == "Refuel soon."  # as the emotion modeller tied it


def test_the_html_report_is_self_contained_and_holds_every_event_and_turn(
        tmp_path: Path) -> None:
    messages = session_messages()
    review = read_session(write_log(tmp_path / "s1.db", messages))
    page = Tables()
    page.feed(render_html(review))
    events = [m for m in messages if isinstance(m, MissionEvent)]
    assert [(r["data-kind"], r["data-name"]) for r in page.rows["events"]] == [
        (e.kind, e.name) for e in events]
    assert [int(r["data-turn"] or 0) for r in page.rows["turns"]] == [1, 2, 1_000_001]
    assert [int(r["data-turn"] or 0) for r in page.rows["latency"]] == [1, 2]
    assert len(page.rows["shifts"]) == 1 and len(page.rows["objectives"]) == 2
    assert page.svgs == 3  # timeline, affect, latency
    assert page.external == []


def test_exports_hold_the_same_turns_affect_and_events(tmp_path: Path) -> None:
    review = read_session(write_log(tmp_path / "s1.db", session_messages()))
    written = write_csv(review, tmp_path / "csv")
    assert [p.name for p in written] == ["turns.csv", "affect.csv", "events.csv"]
    with (tmp_path / "csv" / "turns.csv").open() as file:
        turns = list(csv.DictReader(file))
    assert [row["turn"] for row in turns] == ["1", "2", "1000001"]
    assert float(turns[0]["total_s"]) == pytest.approx(1.8)
    with (tmp_path / "csv" / "affect.csv").open() as file:
        affect = list(csv.DictReader(file))
    assert len(affect) == 4 and affect[2]["text_label"] == "fearful"
    assert affect[2]["face_label"] == ""  # the face was not available
    with (tmp_path / "csv" / "events.csv").open() as file:
        assert len(list(csv.DictReader(file))) == len(review.events) == 7
    data = json.loads(to_json(review))
    assert [t["turn"] for t in data["turns"]] == [1, 2, 1_000_001]
    assert data["shifts"][0]["shift"] == "neutral->fearful"


def test_a_session_without_the_emotion_modeller_still_gets_its_report(tmp_path: Path) -> None:
    review = read_session(write_log(tmp_path / "s1.db", session_messages(with_affect=False)))
    assert review.affect == [] and review.shifts == []
    page = render_html(review)
    assert "no emotion estimates in this log" in page and page.count("<svg") == 2


def test_a_log_cut_short_by_a_crash_gives_a_report_of_what_it_holds(tmp_path: Path) -> None:
    many: list[Message] = [event(0, "mission_started", "drill", 0)]
    for n in range(1, 1500):
        many += [at(n, Transcript(text=f"line {n} " + "words " * 30, final=True, turn=n),
                    "speech", seq=n)]
    full = write_log(tmp_path / "full.db", many)
    cut = tmp_path / "cut.db"
    shutil.copy(full, cut)
    with cut.open("r+b") as file:
        file.truncate(full.stat().st_size * 6 // 10)
    review = read_session(cut)
    assert any("damaged" in note for note in review.notes), review.notes
    assert any("ends before the mission" in note for note in review.notes)
    assert 300 < len(review.turns) < 1499  # the readable part: not nothing, not everything
    numbers = [t.turn for t in review.turns]
    assert numbers == sorted(numbers) and all(
        t.operator_text.startswith(f"line {t.turn} ") for t in review.turns)
    assert "<table id=\"turns\">" in render_html(review)


@pytest.mark.parametrize("held", [0, 2])
def test_a_log_killed_before_the_mission_began_gets_a_report_that_says_what_it_holds(
        tmp_path: Path, held: int) -> None:
    """A session killed in its start: no message, or figures alone (the gateway's port, a
    metric), none of the kinds a review reads. The report says which, and renders."""
    figures: list[Message] = [at(n, Metric(name="avatar_port", value=8765), "avatar", seq=n)
                              for n in range(held)]
    log = write_log(tmp_path / "s1.db", figures)
    review = read_session(log)
    said = ["the log holds no messages"] if held == 0 else [
        f"the log holds {held} messages (metric), none of the kinds a review reads "
        "(mission events, speech and words, affect)"]
    assert review.notes[-1:] == said and review.messages == held
    assert review.events == [] and review.turns == []
    result = CliRunner().invoke(app, ["review", str(log), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 0 and result.exception is None, result.output
    assert said[0] in result.stderr
    assert "report of s1 in" in result.stderr and "0 mission events" in result.stderr


def test_a_log_from_an_older_twin_is_read_as_far_as_it_goes(tmp_path: Path) -> None:
    path = write_log(tmp_path / "old.db", session_messages(), meta={"session": "old-1"})
    db = sqlite3.connect(path)
    db.execute("DELETE FROM meta WHERE key = 'schema_version'")
    db.execute("INSERT INTO messages(t, type, turn, source, seq, data) VALUES (?,?,?,?,?,?)",
               (T0 + 9, "twin_decision", 1, "dialogue", 99,
                msgspec.msgpack.encode({"type": "thought", "text": "an old message"})))
    db.commit()
    db.close()
    review = read_session(path)
    notes = "\n".join(review.notes)
    assert "no schema version" in notes and "1 rows could not be decoded" in notes
    assert "does not hold its mission" in notes
    assert [t.turn for t in review.turns] == [1, 2, 1_000_001]
    assert [o.id for o in review.objectives] == ["ready"]  # from the events alone
    assert review.title == "Review drill"  # from mission_started


def test_the_cli_writes_the_report_and_refuses_what_is_not_a_session(tmp_path: Path) -> None:
    runner = CliRunner()
    log = write_log(tmp_path / "s1.db", session_messages())
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["review", str(log), "-o", str(out), "--json", "-",
                                 "--csv", str(tmp_path / "csv")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["session"] == "s1"
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert (tmp_path / "csv" / "turns.csv").is_file()
    missing = runner.invoke(app, ["review", "no-such-session"])
    assert missing.exit_code == 2 and "no session log 'no-such-session'" in missing.stderr
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    bad = runner.invoke(app, ["review", str(junk)])
    assert bad.exit_code == 2 and "not a twin session log" in bad.stderr


def test_replay_speed_is_checked_from_half_to_eight_times(tmp_path: Path) -> None:
    assert check_speed(0.5) == 0.5 and check_speed(8) == 8
    for speed in (0.4, 8.5, 0):
        with pytest.raises(ValueError, match=r"between 0\.5x and 8x"):
            check_speed(speed)
    log = write_log(tmp_path / "s1.db", session_messages())
    result = CliRunner().invoke(app, ["replay", str(log), "--speed", "20"])
    assert result.exit_code == 2 and "between 0.5x and 8x, got 20" in result.stderr
    started = time.monotonic()
    result = CliRunner().invoke(app, ["replay", str(log), "--speed", "8", "--at", "20"])
    assert result.exit_code == 0, result.output
    assert "replayed" in result.stdout and "mission ended" in result.stdout
    assert time.monotonic() - started >= 10 / 8 * 0.9  # 10 s of session at 8x


def test_a_turn_the_operator_went_on_with_says_so(tmp_path: Path) -> None:
    first = [m for m in operator_turn(1, 8, "Marker at four nine three zero.", ["Say again?"])
             if not isinstance(m, (TwinUtterance, Speech))]
    second = operator_turn(2, 10.7, "Marker at four nine three zero. Give me the drill.",
                           ["Cordon at 200 m."])
    second[0] = at(10.7, SpeechStarted(at=10.7, turn=2, continues=1), "speech")
    messages = [event(0, "mission_started", "drill", 0, text="Review drill"), *first, *second]
    review = read_session(write_log(tmp_path / "s1.db", sorted(messages, key=lambda m: m.t)))
    turns = {t.turn: t for t in review.turns}
    assert turns[1].reply == "" and "went on with it in turn 2" in turns[1].cut
    assert turns[2].cut == "" and turns[2].reply == "Cordon at 200 m."


def test_a_turn_the_recogniser_crashed_in_says_so_and_counts_no_latency(tmp_path: Path) -> None:
    turn = [at(8, SpeechStarted(at=8, turn=1), "speech"),
            at(11, SpeechEnded(at=8, duration=0.0, turn=1, voice_end=T0 + 11, lost=True),
               "speech"),
            at(11.1, Transcript(text="", final=True, confidence=0.0, turn=1), "speech"),
            at(11.2, TwinDecision(trigger="question", intent="clarify", style="brief",
                                  hedge=False, confidence=1.0, turn=1), "dialogue"),
            at(11.3, TwinUtterance(text="Say again? I did not catch that.", index=0, final=True,
                                   intent="clarify", turn=1), "dialogue")]
    messages = [event(0, "mission_started", "drill", 0, text="Review drill"), *turn]
    review = read_session(write_log(tmp_path / "s1.db", messages))
    row = next(t for t in review.turns if t.turn == 1)
    assert "recogniser crashed during this turn" in row.cut
    assert row.reply == "Say again? I did not catch that."
    assert "total" not in row.latency  # no end of the voice to count from
