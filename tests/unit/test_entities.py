"""Grids, frequencies and callsigns found in what the recogniser heard, written as the mission
writes them (twin.entities), on the recogniser's real output for the shipped missions' lines
and on the held-out mission nothing was tuned on."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from twin.config import load_mission
from twin.entities import MissionValues, with_entities
from twin.messages import Transcript, Word, decode, encode

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def route() -> MissionValues:
    return MissionValues.from_mission(load_mission(ROOT / "missions" / "route_clearance.yaml"))


@pytest.mark.parametrize(("heard", "meant"), [
    # whisper tiny.en's transcripts of the demo's lines spoken by the piper voice
    ("Marker at 49307102. Give me the drill, short.",
     "Marker at 33T VM 4930 7102. Give me the drill, short."),
    ("We've lost bull vog two on the net.", "We've lost BULLDOG 2 on the net."),
    ("Casualty in Bulldog 3. Can we get a helicopter and or not?",
     "Casualty in BULLDOG 3. Can we get a helicopter and or not?"),
    ("What goes in the route status for Mule 6 and is the convoy still inside the window?",
     "What goes in the route status for MULE 6 and is the convoy still inside the window?"),
    ("Troop net's on four four decimal one seven five.", "Troop net's on 44.175."),
    ("Grid 4930-7102, and the bulldog 2 team", "Grid 33T VM 4930 7102, and the BULLDOG 2 team"),
    # a grid of the mission's shape that its notes do not hold keeps its shape
    ("Marker at 1234 5678.", "Marker at 1234 5678."),
    ("Marker at one two three four five six seven eight.", "Marker at 1234 5678."),
    # nothing to find
    ("Last grid we had for two?", "Last grid we had for two?"),
    ("We have 2 3 4 5 6 7 casualties.", "We have 2 3 4 5 6 7 casualties."),
    ("Is the 1100 to 1500 window still open?", "Is the 1100 to 1500 window still open?"),
    ("Call the bulldozer now.", "Call the bulldozer now."),
    ("Halt at mile 6.", "Halt at mile 6."),
    ("Visibility 3.5 km, net on 51.250 MHz.", "Visibility 3.5 km, net on 51.250 MHz."),
])
def test_values_heard_are_written_as_the_mission_writes_them(route: MissionValues, heard: str,
                                                             meant: str) -> None:
    assert with_entities(heard, route.find(heard)) == meant


def test_each_entity_says_where_it_was_heard_and_whether_the_mission_holds_it(
        route: MissionValues) -> None:
    text = "Marker at 12345678, tell bull vog nine."
    grid, callsign = route.find(text)
    assert (grid.kind, grid.text, grid.heard, grid.known) == ("grid", "1234 5678", "12345678",
                                                             False)
    assert text[grid.start:grid.end] == grid.heard
    assert (callsign.kind, callsign.text, callsign.known) == ("callsign", "BULLDOG 9", False)
    assert text[callsign.start:callsign.end] == "bull vog nine"


def test_the_confidence_of_an_entity_is_its_least_sure_word(route: MissionValues) -> None:
    text = "Marker at 49307102."
    words = [Word(word="Marker", start=0, end=0.3, probability=0.9),
             Word(word="at", start=0.3, end=0.4, probability=0.95),
             Word(word="49307102.", start=0.4, end=1.6, probability=0.62)]
    (grid,) = route.find(text, words)
    assert grid.confidence == 0.62
    assert route.find(text)[0].confidence == 1.0  # typed: no words


def test_the_held_out_mission_gives_its_own_forms() -> None:
    flood = MissionValues.from_mission(
        load_mission(ROOT / "tests" / "fixtures" / "heldout" / "flood_relief.yaml"))
    heard = "Water two, go to 44172863 and call on four five seven decimal three five."
    assert with_entities(heard, flood.find(heard)) == (
        "WATER 2, go to SO 4417 2863 and call on 457.350.")


def test_a_transcript_carries_its_entities_through_the_log_format(route: MissionValues) -> None:
    text = "Marker at 49307102."
    message = Transcript(text=text, final=True, entities=route.find(text))
    again = decode(encode(message))
    assert isinstance(again, Transcript) and again.entities == message.entities
    assert msgspec.json.decode(msgspec.json.encode(message))["entities"][0]["text"] == \
        "33T VM 4930 7102"
