"""Each example mission as a trainer and a reviewer use it: `twin run` headless in training mode
with the scripted operator to the mission's end, then `twin review` of its log — the report's
tables hold the log's events and turns (checked against the log itself), its exports agree, and
the page renders in headless Chromium (a screenshot per mission in the artifacts folder)."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from twin.config import Mission, load_mission
from twin.log import LogReader
from twin.messages import MissionEvent, Transcript, TwinDecision, TwinUtterance

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "test.yaml"
MISSIONS = sorted(p for p in (ROOT / "missions").glob("*.yaml")
                  if not p.name.endswith(".questions.yaml"))  # not the question files
SPEED = "3"  # three minutes of mission in about a minute: the scripted lines ~10 s apart


def twin(*args: str, cwd: Path, timeout: float = 420) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "twin.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def timed_only(mission: Mission, names: list[str]) -> bool:
    timed = {i.id for i in mission.injects if i.at is not None}
    return bool(names) and set(names) <= timed


@pytest.mark.parametrize("path", MISSIONS, ids=lambda p: p.stem)
def test_a_mission_runs_to_its_end_and_its_review_holds_the_log(
        path: Path, tmp_path: Path, chromium_page: Any, artifacts: Path) -> None:
    mission = load_mission(path)
    run = twin("run", str(path), "--config", str(CONFIG), "--speed", SPEED, "--quiet",
               cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "session ended (mission ended: mission complete)" in run.stdout, run.stdout
    log = Path(re.search(r"session log (\S+\.db)", run.stdout).group(1))  # type: ignore[union-attr]

    # ------------------------------------------------------------ the mission, from its log
    with LogReader(log) as reader:
        events = [m for m in reader.messages(types=["mission_event"])
                  if isinstance(m, MissionEvent)]
        said = [m for m in reader.messages(types=["transcript", "twin_decision",
                                                  "twin_utterance"])]
        assert reader.meta()["mode"] == "training"
    fired = [(e.kind, e.name) for e in events]
    assert fired[0] == ("mission_started", mission.name)
    assert fired[-1] == ("mission_ended", mission.name)
    repeating = {i.id for i in mission.injects if i.repeat}
    once = [f for f in fired if f[1] not in repeating]
    assert len(once) == len(set(once)), "a cue fired twice"
    for phase in mission.phases:
        assert ("phase_started", phase.id) in fired
    skipped = skipped_injects(mission, events)
    for inject in mission.injects:
        if inject.at is not None and inject.id not in skipped:
            assert ("inject", inject.id) in fired, inject.id
    for objective in mission.objectives:  # met by the clock alone: must be met
        condition = objective.when
        if condition is not None and not condition.on_speech and timed_only(
                mission, condition.fired) and not condition.met:
            assert ("objective_met", objective.id) in fired, objective.id
    operator_turns = {m.turn for m in said if isinstance(m, Transcript) and m.final}
    assert len(operator_turns) >= len(mission.script) - 1  # each scripted line heard (ASR)
    turns = {m.turn for m in said if isinstance(m, (TwinDecision, TwinUtterance))
             or (isinstance(m, Transcript) and m.final)}

    # ------------------------------------------------------------ the review of that log
    report, data, folder = tmp_path / "report.html", tmp_path / "report.json", tmp_path / "csv"
    review = twin("review", str(log), "-o", str(report), "--json", str(data), "--csv",
                  str(folder), cwd=tmp_path, timeout=120)
    assert review.returncode == 0, review.stderr
    result = json.loads(data.read_text())
    assert result["ended"] and result["notes"] == []
    assert [(e["kind"], e["name"]) for e in result["events"]] == fired
    assert {t["turn"] for t in result["turns"]} == turns
    decisions = {m.turn: m for m in said if isinstance(m, TwinDecision)}
    finals: dict[int | None, list[str]] = {}
    for m in said:
        if isinstance(m, Transcript) and m.final:
            finals.setdefault(m.turn, []).append(m.text.strip())
    for turn in result["turns"]:
        if turn["turn"] in decisions:
            decision = decisions[turn["turn"]]
            assert (turn["intent"], turn["confidence"]) == (
                decision.intent, round(decision.confidence, 3))
            assert [e["id"] for e in turn["evidence"]] == [e.id for e in decision.evidence]
        if turn["turn"] in finals:
            assert turn["kind"] == "operator"
            assert turn["operator_text"] == " ".join(finals[turn["turn"]])
    met = {e.name for e in events if e.kind == "objective_met"}
    assert {o["id"] for o in result["objectives"] if o["met"]} == met
    with (folder / "turns.csv").open() as file:
        assert [int(r["turn"]) for r in csv.DictReader(file)] == [
            t["turn"] for t in result["turns"]]
    with (folder / "events.csv").open() as file:
        assert [(r["kind"], r["name"]) for r in csv.DictReader(file)] == fired

    # ------------------------------------------------------------ the page, in a real browser
    page = chromium_page
    page.goto(report.as_uri())
    assert page.locator("h1").inner_text().startswith("After-action report")
    rows = page.locator("#events tbody tr")
    assert rows.count() == len(events)
    shown = [(rows.nth(i).get_attribute("data-kind"), rows.nth(i).get_attribute("data-name"))
             for i in range(rows.count())]
    assert shown == fired
    turn_rows = page.locator("#turns tbody tr")
    assert [int(turn_rows.nth(i).get_attribute("data-turn") or -1)
            for i in range(turn_rows.count())] == [t["turn"] for t in result["turns"]]
    assert page.locator("figure svg").count() >= 2  # the timeline and latency at least
    assert page.evaluate("document.querySelector('figure svg').getBoundingClientRect().width") \
        > 600
    page.screenshot(path=str(artifacts / f"review-{mission.name}.png"), full_page=True)
    assert page.twin_errors == []


def skipped_injects(mission: Mission, events: list[MissionEvent]) -> set[str]:
    """Timed injects a phase ended early jumped over (by design they never fire): those planned
    between the last event before the jump and the phase (or end) the clock jumped to."""
    skipped: set[str] = set()
    for index, event in enumerate(events):
        if event.kind in ("phase_started", "mission_ended") and event.reason and index:
            before = max(e.mission_time for e in events[:index])
            skipped |= {i.id for i in mission.injects
                        if i.at is not None and before <= i.at < event.mission_time}
    return skipped
