"""`twin run` of the example mission as a user runs it, then `twin log` and `twin replay`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from twin.config import load_mission
from twin.log import LogReader
from twin.messages import (
    Message,
    MissionEvent,
    Speech,
    SpeechEnded,
    Transcript,
    TwinDecision,
    TwinUtterance,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MISSION = ROOT / "missions" / "route_clearance.yaml"


def twin(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "twin.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def test_run_the_example_mission_to_its_end_then_read_and_replay_the_log(tmp_path: Path) -> None:
    mission = load_mission(MISSION)
    # From another folder: the packaged default config is used, the log goes to ./sessions.
    run = twin("run", str(MISSION), "--speed", "20", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "on a local Ray" in run.stdout
    assert "session ended (mission ended: mission complete)" in run.stdout
    for inject in mission.injects:
        assert f"inject [{inject.id}]" in run.stdout
    match = re.search(r"session log (\S+\.db)", run.stdout)
    assert match, run.stdout
    log = Path(match.group(1))
    assert log.parent == tmp_path / "sessions" and log.is_file()

    with LogReader(log) as reader:
        events = list(reader.messages(types=["mission_event"]))
        total = reader.count()
        assert reader.meta()["mode"] == "training"
    cues = [e for e in events if isinstance(e, MissionEvent) and e.kind != "objective_met"]
    assert len(cues) == 2 + len(mission.phases) + len(mission.injects)

    shown = twin("log", log.stem, "--type", "mission_event", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.strip().splitlines()
    assert len(lines) == len(events)
    assert "mission started" in lines[0] and "mission ended" in lines[-1]

    replayed = twin("replay", str(log), "--speed", "8", cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed {total} messages" in replayed.stdout
    assert "inject [ied-marker]" in replayed.stdout


def test_run_refuses_a_bad_mission_with_its_path_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MISSION.read_text().replace('duration: "00:30"', 'duration: "soon"', 1))
    run = twin("run", str(bad), cwd=tmp_path)
    assert run.returncode == 2
    assert str(bad) in run.stderr and "phases[0].duration" in run.stderr
    assert not (tmp_path / "sessions").exists()  # nothing started


def test_run_with_an_audio_file_puts_partial_and_final_transcripts_in_the_log(
        tmp_path: Path) -> None:
    clip = ROOT / "tests" / "fixtures" / "speech" / "sense_and_sensibility_01_austen_64kb-0870.wav"
    run = twin("run", str(MISSION), "--audio", str(clip), "--speed", "12", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "operator (final" in run.stdout and "dashwood" in run.stdout.lower()
    log = next((tmp_path / "sessions").glob("*.db"))
    shown = twin("log", str(log), "--type", "transcript", cwd=tmp_path)
    lines = shown.stdout.strip().splitlines()
    assert any("(partial" in line for line in lines)  # while the operator was speaking
    assert sum("(final" in line for line in lines) == 1
    # every stage of the turn is in the log, in order, from the true end of the voice
    with LogReader(log) as reader:
        messages = list(reader.messages(types=[
            "speech_ended", "transcript", "twin_decision", "twin_utterance", "speech"]))
    final = next(m for m in messages if isinstance(m, Transcript) and m.final)

    def first(kind: type[Message]) -> float:
        return min(m.t for m in messages if isinstance(m, kind) and m.turn == final.turn)

    ended = next(m for m in messages if isinstance(m, SpeechEnded) and m.turn == final.turn)
    stages = [ended.voice_end, ended.t, final.t, first(TwinDecision), first(TwinUtterance),
              first(Speech)]
    assert stages == sorted(stages), stages


def test_run_with_a_bad_audio_file_degrades_and_keeps_the_log(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav")
    run = twin("run", str(MISSION), "--audio", str(bad), "--speed", "30", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "bad.wav: not a PCM wav" in run.stderr  # said why
    assert "continuing without operator_audio" in run.stderr
    assert "session ended (mission ended: mission complete)" in run.stdout
