"""Grids, frequencies, callsigns and times found in what the recogniser heard, written as the
mission writes them (twin.entities), on the recogniser's real output for the shipped missions'
lines, on the held-out mission nothing was tuned on and on small missions of a few lines."""

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


@pytest.fixture(scope="module")
def mountain() -> MissionValues:
    return MissionValues.from_mission(load_mission(ROOT / "missions" / "mountain_rescue.yaml"))


# a mission of a few lines: nothing below depends on the shipped missions' values alone
CONVOY = MissionValues.from_texts([
    "Orders at 0600 local. The convoy leaves the harbour 0645 and must clear the market, open "
    "1100 to 1500, before last light 1740 local. Team sizes: 24, 1200 sandbags since 2019.",
    "BULLDOG 0A leads, BULLDOG 2 and HOTEL 1 follow. Start point 33T VM 4930 7102.",
])


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


def test_the_times_a_mission_holds_are_learned_from_its_texts(mountain: MissionValues) -> None:
    # a cue before ("at"), a time word after ("local"), a range, a leading zero; not the team
    # size, the sandbags, the year or the grid's halves
    assert CONVOY.times == {"0600", "0645", "1100", "1500", "1740"}
    assert {"1252", "1702", "1740", "1900", "0930"} <= mountain.times
    assert not {"2231", "0947", "2240", "0932"} & mountain.times  # grids "NY 2231 0947" ...
    flood = MissionValues.from_mission(
        load_mission(ROOT / "tests" / "fixtures" / "heldout" / "flood_relief.yaml"))
    assert {"0615", "0745", "1100", "1300", "1720"} <= flood.times
    assert "2016" not in flood.times  # "(January 2016)"


@pytest.mark.parametrize(("heard", "meant"), [
    # what whisper writes for a time said on the radio
    ("Convoy leaves at 0645.", "Convoy leaves at 0645."),
    ("Convoy leaves at 06:45.", "Convoy leaves at 0645."),
    ("Convoy leaves at 6:45.", "Convoy leaves at 0645."),
    ("Oh six forty-five, convoy leaves.", "0645, convoy leaves."),
    ("Leaves at zero six four five.", "Leaves at 0645."),
    ("Leaves at oh six hundred hours.", "Leaves at 0600 hours."),
    ("Clear by 1500 hours.", "Clear by 1500 hours."),
    ("Clear by 15:00.", "Clear by 1500."),
    ("Clear by 1,500.", "Clear by 1500."),
    ("Clear by fifteen hundred.", "Clear by 1500."),
    ("Clear by 15 hundred.", "Clear by 1500."),
    ("Clear by 3 p.m.", "Clear by 1500."),
    ("Clear by 3pm, over.", "Clear by 1500, over."),
    ("Open from ten hundred.", "Open from 1000."),
    ("Open at eleven hundred hours.", "Open at 1100 hours."),
    ("Contact at twelve fifty-two.", "Contact at 1252."),
    ("ETA 12.52, over.", "ETA 1252, over."),
    ("Roger, 1100 Zulu.", "Roger, 1100 Zulu."),
    ("Is the 1100 to 1500 window still open?", "Is the 1100 to 1500 window still open?"),
    # a time said the twelve-hour way is the mission's afternoon one where it holds only that
    ("Last light at 5:40?", "Last light at 1740?"),
    ("Last light seventeen forty.", "Last light 1740."),
])
def test_a_time_heard_is_written_in_four_figures(heard: str, meant: str) -> None:
    assert with_entities(heard, CONVOY.find(heard)) == meant


@pytest.mark.parametrize("heard", [
    "Fifteen hundred metres to the bridge.",
    "We need 1,500 litres of water.",
    "At two hundred metres, turn left.",
    "Two hundred metres.",
    "We have 1500 sandbags.",
    "From 1500 to 2000 metres the road is dirt.",
    "Move 1715.",  # no cue, not the mission's
    "The road is closed since 2019.",
    "Since 2024, over.",
    "By 2030.",
    "Ten thirty casualties.",
    "Give me two three four five.",
    "At 25:00.",
    "Bulldog 2 am I clear?",
    "Visibility 3.5 km.",
])
def test_what_is_no_time_stays_as_heard(heard: str) -> None:
    assert [e for e in CONVOY.find(heard) if e.kind == "time"] == []


def test_a_time_says_where_it_was_heard_and_whether_the_mission_holds_it() -> None:
    text = "Leaves at oh six forty-five, back by 1715 hours."
    held, not_held = CONVOY.find(text)
    assert (held.kind, held.text, held.heard, held.known) == ("time", "0645", "oh six forty-five",
                                                             True)
    assert text[held.start:held.end] == held.heard
    assert (not_held.kind, not_held.text, not_held.heard, not_held.known) == (
        "time", "1715", "1715", False)


def test_the_shipped_and_held_out_missions_give_their_times(mountain: MissionValues) -> None:
    heard = "India 1 found them at 12:52, off the hill by nineteen hundred."
    assert with_entities(heard, mountain.find(heard)) == (
        "INDIA 1 found them at 1252, off the hill by 1900.")
    assert [(e.kind, e.known) for e in mountain.find(heard)] == [
        ("callsign", True), ("time", True), ("time", True)]
    assert with_entities("Sunset at 5:02.", mountain.find("Sunset at 5:02.")) == "Sunset at 1702."
    flood = MissionValues.from_mission(
        load_mission(ROOT / "tests" / "fixtures" / "heldout" / "flood_relief.yaml"))
    heard = "Water 2, the bridge is closed from oh seven forty-five."
    assert with_entities(heard, flood.find(heard)) == (
        "WATER 2, the bridge is closed from 0745.")


@pytest.mark.parametrize(("heard", "meant"), [
    ("Bulldog 0 Alpha, move now.", "BULLDOG 0A, move now."),
    ("Bulldog zero alpha, move now.", "BULLDOG 0A, move now."),
    ("Bulldog 0-Alpha, move now.", "BULLDOG 0A, move now."),
    ("Bulldog 0A, move now.", "BULLDOG 0A, move now."),
    ("Bulldog 0, alpha team is moving.", "BULLDOG 0, alpha team is moving."),
])
def test_a_callsign_letter_said_phonetically(route: MissionValues, heard: str,
                                             meant: str) -> None:
    assert with_entities(heard, route.find(heard)) == meant
    assert with_entities(heard, CONVOY.find(heard)) == meant


def test_a_phonetic_letter_is_a_callsign_only_where_the_mission_has_such_callsigns(
        mountain: MissionValues) -> None:
    # the mountain's callsigns are HOTEL 1 and INDIA 1: phonetic words themselves
    heard = "Hotel 1, India 1, report. Hotel 1 India one at 1452."
    assert with_entities(heard, mountain.find(heard)) == (
        "HOTEL 1, INDIA 1, report. HOTEL 1 INDIA 1 at 1452.")
    # a callsign name with its number after a callsign that may have a letter is a callsign
    heard = "Bulldog 0 Hotel 1, over."
    assert [(e.text, e.known) for e in CONVOY.find(heard)] == [("BULLDOG 0", False),
                                                               ("HOTEL 1", True)]
    # a letter said after the callsign's number, with no callsign of that name having one
    assert with_entities("Hotel 1 Alpha.", CONVOY.find("Hotel 1 Alpha.")) == "HOTEL 1 Alpha."
    # a new letter of a callsign that has one is of the mission's shape, not held
    (callsign,) = CONVOY.find("Bulldog 2 Charlie.")
    assert (callsign.text, callsign.heard, callsign.known) == ("BULLDOG 2C", "Bulldog 2 Charlie",
                                                               False)


@pytest.mark.parametrize(("heard", "meant"), [
    ("Marker at Victor Mike four nine three zero seven one zero two.",
     "Marker at 33T VM 4930 7102."),
    ("Marker at Victor Mike 4930 7102.", "Marker at 33T VM 4930 7102."),
    ("Marker at 33 Tango Victor Mike 49307102.", "Marker at 33T VM 4930 7102."),
    ("Marker at VM 49307102.", "Marker at 33T VM 4930 7102."),
    ("Marker at Victor Mike 1234 5678.", "Marker at VM 1234 5678."),
    # other square letters than the mission's grid with these figures: left as heard
    ("Marker at Alpha Bravo 49307102.", "Marker at Alpha Bravo 33T VM 4930 7102."),
    # a callsign before a grid keeps its number, the grid its letters
    ("Bulldog 0 Victor Mike 49307102.", "BULLDOG 0 33T VM 4930 7102."),
])
def test_a_grid_square_said_phonetically(route: MissionValues, heard: str, meant: str) -> None:
    assert with_entities(heard, route.find(heard)) == meant


def test_the_mountain_grid_square_said_phonetically(mountain: MissionValues) -> None:
    heard = "Party found at November Yankee 2240 0932."
    (grid,) = mountain.find(heard)
    assert (grid.text, grid.heard, grid.known) == ("NY 2240 0932", "November Yankee 2240 0932",
                                                  True)


@pytest.mark.parametrize(("heard", "meant"), [
    ("Seven four eight and falling nought point nine a minute.", ["748", "0.9"]),
    ("If one of them hit twenty-five ppm, what would we do?", ["25"]),
    ("Vis is dropping. If it goes under two hundred metres?", ["200"]),
    ("We have 1,500 litres and 3.5 km to go.", ["1500", "3.5"]),
    ("Check in on channel 2, how often?", ["2"]),
    ("Is that the one you said? Give me one more.", ["1"]),
    ("two three four five six seven", []),  # read as a grid, of no grid the mission has
])
def test_other_numbers_are_found_in_figures(heard: str, meant: list[str]) -> None:
    found = [e.text for e in CONVOY.find(heard) if e.kind == "number"]
    assert found == meant
    assert with_entities(heard, CONVOY.find(heard)) == heard  # numbers stay as heard


def test_a_number_the_mission_holds_is_known_and_a_callsign_may_have_three_figures() -> None:
    values = MissionValues.from_texts(["RESCUE 936 lands at the ICP. Team of 24 at grid "
                                       "NY 2231 0947."])
    found = {e.text: e for e in values.find("Who is the winchman on rescue 936? We have 24, "
                                            "not 25.")}
    assert found["RESCUE 936"].kind == "callsign"
    assert found["24"].known and not found["25"].known
