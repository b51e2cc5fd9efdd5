"""The twin's answers with the real models: SmolLM2 through llama-cpp-python and MiniLM
retrieval over the example mission's knowledge. Checked against facts, not exact strings."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from actors.dialogue import Dialogue
from twin.actor import SessionInfo
from twin.config import load_mission
from twin.messages import Transcript, TwinDecision, TwinUtterance
from twin.testing import Harness

pytestmark = pytest.mark.models

MISSION = load_mission(Path(__file__).resolve().parents[2] / "missions" / "route_clearance.yaml")

# Questions whose answer the knowledge notes hold, and a fact the reply must contain.
HELD = [
    ("What frequency is the troop net on?", ["44.175"]),
    ("What's the grid of checkpoint Birch?", ["4760 7035"]),
    ("What is the fuel state of BULLDOG 3?", ["68"]),
    ("Who is the medic and in which vehicle?", ["Whitlock", "BULLDOG 4"]),
    ("What is the callsign of the EOD team?", ["SPARROW"]),
    ("At what kilometre is checkpoint Cedar?", ["11.6"]),
    ("What is the cordon distance for a suspected device?", ["200"]),
    ("Where is the release point?", ["MERCER"]),
    ("How far is the route from CP1 ALDER to the release point?", ["18.6"]),
    ("What is the squadron command net frequency?", ["47.550"]),
]
# Questions the notes do not answer: the reply hedges and invents no value.
UNKNOWN = [
    "What is the enemy's battalion strength north of the river?",
    "What is the exchange rate of the local currency?",
    "What is the name of the brigade commander's dog?",
    "How many helicopters does brigade have available tomorrow?",
]


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 600))


async def ask(harness: Harness, question: str, turn: int) -> tuple[TwinDecision, str]:
    await harness.send(Transcript(text=question, final=True, confidence=0.95, turn=turn),
                       source="speech")
    decision = await harness.wait_for(TwinDecision, lambda m: m.turn == turn, timeout=60)
    await harness.wait_for(TwinUtterance, lambda m: m.turn == turn and m.final, timeout=60)
    sentences = [m.text for m in harness.probe.messages(TwinUtterance) if m.turn == turn]
    return decision, " ".join(sentences)


def dialogue() -> Dialogue:
    return Dialogue({"reports": False}, name="dialogue",
                    session=SessionInfo(id="test", mission=MISSION))


def test_held_questions_get_the_right_fact_and_unknown_ones_a_hedge() -> None:
    async def scenario() -> None:
        async with Harness(dialogue()) as harness:
            right = 0
            replies = []
            for turn, (question, facts) in enumerate(HELD, start=1):
                decision, reply = await ask(harness, question, turn)
                ok = all(fact.lower() in reply.lower() for fact in facts)
                right += ok
                replies.append((question, decision.intent, round(decision.confidence, 2),
                                ok, reply))
            print(*replies, sep="\n")
            assert right >= 8, replies
            notes = " ".join(p.read_text() for p in MISSION.knowledge)
            known_values = set(re.findall(r"\d+(?:[.,:]\d+)*", notes))
            for turn, question in enumerate(UNKNOWN, start=100):
                decision, reply = await ask(harness, question, turn)
                print(question, decision.intent, decision.hedge, reply)
                assert decision.hedge or decision.intent == "decline", reply
                invented = set(re.findall(r"\d+(?:[.,:]\d+)*", reply)) - known_values
                assert not invented, reply
                assert re.search(r"not (certain|sure)|do not have|don't have|verify|check",
                                 reply, re.IGNORECASE), reply

    run(scenario())
