"""The ``twin`` command line, driven in-process with Typer's runner (no Ray): mission checks,
reading and replaying session logs, the model list, and clear exit codes and messages for bad
input (1 = a checked file is invalid, 2 = the command cannot run as asked)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from twin.cli import app
from twin.log import SessionLog
from twin.messages import (
    MESSAGE_TYPES,
    BehaviorObservation,
    Message,
    MissionEvent,
    Transcript,
    TwinUtterance,
    from_json,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
ROUTE_CLEARANCE = ROOT / "missions" / "route_clearance.yaml"

BAD_MISSION = """\
name: drill
title: A drill
setting: A yard
briefing: Do the drill.
roster:
  - id: ana
    callsign: ALPHA 1
    name: Ana
    role: Commander
objectives:
  - id: obj-1
    text: Finish
    phase: p1
phases:
  - id: p1
    title: One
    duration: "01:00"
    objectives: [obj-1]
  - id: p2
    title: Two
    duration: "half a minute"
"""


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(arg) for arg in args], catch_exceptions=False)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every command from an empty folder: no stray ``sessions/`` is found or written."""
    monkeypatch.chdir(tmp_path)


def recorded_session() -> list[Message]:
    """A short session, 0.1 s between messages, starting now."""
    t0 = time.time()
    return [
        MissionEvent(
            kind="mission_started",
            mission="drill",
            mission_time=0.0,
            text="Drill begins",
            source="director",
            t=t0,
        ),
        MissionEvent(
            kind="phase_started",
            mission="drill",
            mission_time=65.0,
            name="p1",
            text="Move out",
            source="director",
            t=t0 + 0.1,
            seq=1,
        ),
        Transcript(
            text="contact front", final=True, confidence=0.9, source="asr", t=t0 + 0.2, turn=1
        ),
        BehaviorObservation(frame_t=0.3, face_present=True, source="vision", t=t0 + 0.3),
        TwinUtterance(
            text="Take cover.", index=0, final=True, source="dialogue", t=t0 + 0.4, turn=1
        ),
    ]


@pytest.fixture
def session_log(tmp_path: Path) -> tuple[Path, list[Message]]:
    messages = recorded_session()
    path = tmp_path / "logs" / "drill-1.db"
    log = SessionLog.create(path, {"id": "drill-1", "mission": "drill"})
    log.append(messages)
    log.close()
    return path, messages


# ---------------------------------------------------------------------------- missions


def test_missions_validate_the_shipped_mission() -> None:
    result = invoke("missions", "validate", ROUTE_CLEARANCE)
    assert result.exit_code == 0, result.output
    assert f"{ROUTE_CLEARANCE}: ok" in result.output
    assert "phases" in result.output


def test_missions_validate_a_bad_mission_names_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_MISSION)
    result = invoke("missions", "validate", ROUTE_CLEARANCE, bad)
    assert result.exit_code == 1
    assert f"{bad}: phases[1].duration: " in result.output
    assert "half a minute" in result.output
    assert f"{ROUTE_CLEARANCE}: ok" in result.output, "the good file is still checked"


def test_missions_validate_a_missing_file(tmp_path: Path) -> None:
    result = invoke("missions", "validate", tmp_path / "absent.yaml")
    assert result.exit_code == 1
    assert "absent.yaml" in result.output


def test_missions_schema_is_json_with_phases() -> None:
    result = invoke("missions", "schema")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert "phases" in schema["properties"]


# ---------------------------------------------------------------------------- log


def test_log_prints_readable_lines(session_log: tuple[Path, list[Message]]) -> None:
    path, _ = session_log
    result = invoke("log", path)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    assert "director" in lines[0] and "mission started: Drill begins" in lines[0]
    assert "T+01:05 phase started [p1]: Move out" in lines[1]
    assert "asr turn 1" in lines[2] and "operator (final, 0.90): contact front" in lines[2]
    assert "behaviour face" in lines[3]
    assert "dialogue turn 1" in lines[4] and "Take cover." in lines[4]


def test_log_filters_by_type(session_log: tuple[Path, list[Message]]) -> None:
    path, _ = session_log
    result = invoke("log", path, "--type", "mission_event")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert all("director" in line for line in lines)


def test_log_filters_by_turn_and_source(session_log: tuple[Path, list[Message]]) -> None:
    path, _ = session_log
    result = invoke("log", path, "--turn", "1", "--source", "dialogue")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        line for line in result.stdout.splitlines() if "Take cover." in line
    ]
    assert len(result.stdout.splitlines()) == 1


def test_log_json_lines_decode_to_the_messages(session_log: tuple[Path, list[Message]]) -> None:
    path, messages = session_log
    result = invoke("log", path, "--json")
    assert result.exit_code == 0, result.output
    decoded = [from_json(line) for line in result.stdout.splitlines()]
    assert decoded == messages


def test_log_meta_prints_the_metadata_first(session_log: tuple[Path, list[Message]]) -> None:
    path, _ = session_log
    result = invoke("log", path, "--meta", "--type", "transcript", "--json")
    assert result.exit_code == 0, result.output
    meta, end = json.JSONDecoder().raw_decode(result.stdout)
    rest = result.stdout[end:].lstrip("\n")
    assert meta["id"] == "drill-1"
    assert meta["schema_version"] == 1
    assert [type(from_json(line)) for line in rest.splitlines()] == [Transcript]


def test_log_finds_a_session_by_id_in_sessions_folder(
    tmp_path: Path, session_log: tuple[Path, list[Message]]
) -> None:
    path, _ = session_log
    (tmp_path / "sessions").mkdir()
    path.rename(tmp_path / "sessions" / path.name)
    result = invoke("log", "drill", "--json")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 5


def test_log_unknown_type_exits_2_listing_known_types(
    session_log: tuple[Path, list[Message]],
) -> None:
    path, _ = session_log
    result = invoke("log", path, "--type", "hologram")
    assert result.exit_code == 2
    assert "'hologram' is not a message type" in result.output
    assert ", ".join(sorted(MESSAGE_TYPES)) in " ".join(result.output.split())


def test_log_missing_session_exits_2() -> None:
    result = invoke("log", "nope")
    assert result.exit_code == 2
    assert "no session log 'nope'" in result.output


def test_log_of_a_file_that_is_not_a_log_exits_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite " * 200)
    result = invoke("log", junk)
    assert result.exit_code == 2
    assert "not a twin session log" in result.output


# ---------------------------------------------------------------------------- replay


def test_replay_prints_the_messages(session_log: tuple[Path, list[Message]]) -> None:
    path, messages = session_log
    started = time.monotonic()
    result = invoke("replay", path, "--speed", "8")
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 5
    lines = result.stdout.splitlines()
    assert f"replayed {len(messages)} messages" in lines[-1]
    shown = lines[:-1]
    # The console leaves out video features; everything else is printed in order.
    assert len(shown) == len(messages) - 1
    assert "mission started" in shown[0]
    assert "contact front" in shown[2]
    assert "Take cover." in shown[3]


def test_replay_from_a_turn(session_log: tuple[Path, list[Message]]) -> None:
    path, _ = session_log
    result = invoke("replay", path, "--speed", "8", "--turn", "1")
    assert result.exit_code == 0, result.output
    assert "replayed 3 messages" in result.stdout


@pytest.mark.parametrize("speed", ["0", "1000"])
def test_replay_speed_out_of_range_exits_2(
    session_log: tuple[Path, list[Message]], speed: str
) -> None:
    path, _ = session_log
    result = invoke("replay", path, "--speed", speed)
    assert result.exit_code == 2
    assert "speed must be between" in result.output


def test_replay_missing_session_exits_2() -> None:
    result = invoke("replay", "nope")
    assert result.exit_code == 2
    assert "no session log 'nope'" in result.output


# ---------------------------------------------------------------------------- models and run


def test_models_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_MODELS", str(tmp_path / "models"))
    result = invoke("models", "list")
    assert result.exit_code == 0, result.output
    assert f"models folder: {tmp_path / 'models'}" in result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "whisper-tiny.en" in rows
    assert "missing" in rows["whisper-tiny.en"]


def test_run_with_a_missing_mission_exits_2(tmp_path: Path) -> None:
    mission = tmp_path / "no-such-mission.yaml"
    result = invoke("run", mission, "--local", "--config", ROOT / "configs" / "test.yaml")
    assert result.exit_code == 2
    assert str(mission) in result.output
    assert not (tmp_path / "sessions").exists(), "no session is started"


def test_run_with_a_bad_mode_exits_2() -> None:
    result = invoke("run", ROUTE_CLEARANCE, "--mode", "rehearsal")
    assert result.exit_code == 2
    assert "--mode must be training or deployment" in result.output


def test_eval_dialogue_with_a_bad_question_file_exits_2_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.questions.yaml"
    bad.write_text("questions:\n  - {question: 'Grid?', kind: guess, facts: ['1']}\n")
    result = invoke("eval", "dialogue", "--questions", bad)
    assert result.exit_code == 2
    assert f"{bad}, question 1, field 'kind'" in result.output


def test_eval_dialogue_needs_a_mission(tmp_path: Path) -> None:
    questions = tmp_path / "q.tsv"
    questions.write_text("question\tkind\nWhat is the dog called?\tunknown\n")
    result = invoke("eval", "dialogue", "--questions", questions)
    assert result.exit_code == 2 and "names no mission; give --mission" in result.output


def test_eval_dialogue_refuses_an_after_that_is_no_inject_before_any_model(
        tmp_path: Path) -> None:
    questions = tmp_path / "q.yaml"
    questions.write_text("questions:\n  - {question: 'Dust?', kind: unknown, after: [sandstorm]}\n")
    result = invoke("eval", "dialogue", "--questions", questions, "--mission", ROUTE_CLEARANCE)
    assert result.exit_code == 2
    assert "question 1, field 'after': no inject 'sandstorm'" in result.output


def test_chat_with_a_missing_mission_exits_2(tmp_path: Path) -> None:
    result = invoke("chat", tmp_path / "absent.yaml")
    assert result.exit_code == 2 and "absent.yaml" in result.output
