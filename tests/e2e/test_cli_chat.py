"""`twin chat` as a user runs it: a terminal conversation with the twin's mind, the real model
(the small Qwen of configs/test.yaml), typed questions on standard input and an inject."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
def test_twin_chat_answers_typed_questions_and_reports_an_inject() -> None:
    typed = ("What frequency is the troop net on?\n/injects\n/inject met-forecast\n"
             "/inject nope\n/quit\n")
    run = subprocess.run(
        [sys.executable, "-m", "twin.cli", "chat", str(ROOT / "missions" / "route_clearance.yaml"),
         "--config", str(ROOT / "configs" / "test.yaml")],
        input=typed, capture_output=True, text=True, timeout=840, cwd=ROOT)
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    assert "the twin is ready" in out
    assert "decision: answer" in out  # the policy's decision is shown before the reply
    answer = next(line for line in out.splitlines() if line.startswith("twin ("))
    assert "44.175" in answer, out
    assert "met-forecast" in out and "bulldog2-comms-loss" in out  # /injects lists them
    assert "decision: report" in out and "800 m" in out  # the report says what the dust means
    assert "no inject 'nope'" in out
