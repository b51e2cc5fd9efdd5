"""The twin's answers with the real models: Qwen2.5 Coder 1.5B through llama-cpp-python reading
the whole mission, MiniLM retrieval for the evidence, on the demo mission's question file, and a
follow-up question that only the conversation makes answerable. Bounds on facts, not strings.
(`twin eval dialogue` runs the other question files and the held-out mission in
tests/fixtures/heldout the same way.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from twin.config import load_mission
from twin.conversation import Exchange, Talk
from twin.eval_dialogue import evaluate, load_questions, summary

pytestmark = pytest.mark.models

ROOT = Path(__file__).resolve().parents[2]
MODEL = {"chat": {"model": "qwen2.5-coder-1.5b-instruct"}}
# The demo mission's file (its scripted lines among them); the others take as long again each:
# `twin eval dialogue --questions missions/<mission>.questions.yaml` runs them.
FILES = [ROOT / "missions" / "route_clearance.questions.yaml"]


@pytest.mark.timeout(1800)  # 30 questions and the reports between them, about 8 minutes
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name.split(".")[0])
def test_the_twin_answers_a_question_file_with_the_mission_facts(path: Path) -> None:
    questions, mission = load_questions(path)
    assert mission is not None
    # typed: the facts are the same spoken (CI time); `twin eval dialogue` times it spoken
    results, ready = evaluate(mission, questions, MODEL, spoken=False, progress=print)
    data = summary(results, ready)
    for row in data["questions"]:
        print(row["number"], row["kind"], row["passed"], row["why"], "|", row["reply"])
    print({k: v for k, v in data.items() if k != "questions"})
    total = data["total"]
    facts = data["by_kind"]["fact"]
    # Bounds well under what the default model scores here (see the note), far over the
    # old mind's (which answered none of the demo's scripted lines with the mission's facts).
    assert total["passed"] >= 0.25 * total["questions"], data["by_kind"]
    assert facts["passed"] >= 0.5 * facts["questions"], data["by_kind"]
    assert data["invented_values"] == 0


@pytest.mark.timeout(600)
def test_a_follow_up_is_answered_from_the_conversation() -> None:
    # "And BULLDOG 3?" names no topic: the fuel state comes from the turn before
    mission = load_mission(ROOT / "missions" / "route_clearance.yaml")

    async def talk() -> list[Exchange]:
        async with Talk(mission, MODEL) as twin:
            return [await twin.ask("What's the fuel state of BULLDOG 2?"),
                    await twin.ask("And BULLDOG 3?")]

    first, follow_up = asyncio.run(talk())
    print(first.reply, "|", follow_up.reply)
    assert "81" in first.reply or "162" in first.reply  # BULLDOG 2: 81 % (162 L)
    assert "68" in follow_up.reply or "258" in follow_up.reply  # BULLDOG 3: 68 % (258 L)


@pytest.mark.timeout(300)
def test_the_odds_of_each_token_come_with_the_real_model() -> None:
    """The recorder bound to the chat model as the Dialogue binds it, through LangChain into
    llama.cpp: every token streamed but the last is scored, and a value read from the prompt
    was no guess."""
    from langchain_core.prompts import ChatPromptTemplate
    from llama_cpp import LogitsProcessorList

    from actors.chat import ChatSettings, TokenOdds, chat_model

    chat = chat_model(ChatSettings(max_tokens=24))
    odds = TokenOdds(chat.client.detokenize)
    chain = (ChatPromptTemplate.from_messages([("placeholder", "{messages}")])
             | chat.bind(logits_processor=LogitsProcessorList([odds])))
    messages = [("system", "The troop net is on 44.175 MHz; its alternate is 46.900 MHz."),
                ("human", "Which frequency is the alternate? Answer with the figure.")]
    text = "".join(str(chunk.content) for chunk in chain.stream({"messages": messages}))
    written = "".join(piece for piece, _ in odds.tokens)
    print(text, odds.tokens)
    assert "46.900" in text and text.startswith(written) and len(text) - len(written) <= 8
    assert all(0 < p <= 1 for _, p in odds.tokens)
    least = odds.least("46.900")
    assert least is not None and least > 0.5
