"""The mission's words choose between the recogniser's hypotheses (actors/lexicon.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.lexicon import PAIR_WEIGHT, WORD_WEIGHT, Lexicon
from twin.config import ScriptedLine, load_mission

pytestmark = pytest.mark.unit

MISSIONS = Path(__file__).resolve().parents[2] / "missions"


def test_the_lexicon_holds_the_words_and_pairs_of_the_texts_normalised() -> None:
    lexicon = Lexicon.from_texts(["Start the DRILL, now.", '{"text":"leak rate 2"}'])
    assert {"start", "the", "drill", "now", "leak", "rate", "two"} <= lexicon.words
    assert ("the", "drill") in lexicon.pairs and ("rate", "two") in lexicon.pairs
    assert ("now", "leak") not in lexicon.pairs  # no pair across two texts
    assert "textleak" not in lexicon.words  # JSON's marks part the words they join


def test_fit_weighs_the_share_of_words_and_pairs_the_mission_uses() -> None:
    lexicon = Lexicon.from_texts(["start the drill"])
    assert lexicon.fit("Start the drill.") == pytest.approx(WORD_WEIGHT + PAIR_WEIGHT)
    assert lexicon.fit("start the real") == pytest.approx(WORD_WEIGHT * 2 / 3 + PAIR_WEIGHT / 2)
    assert lexicon.fit("nothing here") == 0.0
    assert lexicon.fit("...") == 0.0


def test_a_near_tie_goes_to_the_hypothesis_the_mission_says_and_a_clear_lead_stays() -> None:
    lexicon = Lexicon.from_texts(["Checks are done, start the drill."])
    heard, said = "checks are done, start the real", "checks are done, start the drill"
    assert lexicon.choose([(heard, -0.30), (said, -0.33)]) == 1
    assert lexicon.choose([(heard, -0.10), (said, -0.60)]) == 0


def test_without_the_missions_words_the_models_order_stands() -> None:
    lexicon = Lexicon.from_texts(["fuel state across the package"])
    assert lexicon.choose([("he was not", -0.4), ("he was knot", -0.4)]) == 0
    assert lexicon.choose([("he was not", -0.5), ("he was knot", -0.4)]) == 1
    with pytest.raises(ValueError, match="no hypotheses"):
        lexicon.choose([])


def test_a_missions_lexicon_reads_its_notes_but_not_its_scripted_lines() -> None:
    mission = load_mission(MISSIONS / "route_clearance.yaml")
    line = ScriptedLine(at=0, operator=mission.roster[0].id, text="Zebra crossing ahead?")
    lexicon = Lexicon.from_mission(mission.model_copy(update={"script": [line]}))
    assert {"culvert", "bulldog", "sunrise"} <= lexicon.words  # notes, roster, injects
    assert "zebra" not in lexicon.words  # what the operator has yet to say is no evidence
