"""The value checker (``twin.grounding``) against sentences a model might say: each value must be
in what the twin may state, however it is written, and a value one digit off is not."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.grounding import Grounds, figures, numbers, value_phrases

pytestmark = pytest.mark.unit

NOTES = """Cordon SOP: the cordon is 200 m around a suspected device; the incident control point
is at least 200 m back on cleared ground.
CP3 CEDAR is at km 11.6, grid 33T VM 5120 7180.
Troop net: primary 44.175 MHz, alternate 46.900 MHz.
Callsigns: BULLDOG 1, BULLDOG 2, BULLDOG 3, BULLDOG 4 and BULLDOG 5. LOGPAC 7 brings fuel.
Codeword CHECKMATE: a suspected device. Step off from HALDEN at 1100 local.
BULLDOG 2 is commanded by LCpl Ana Brandt; the troop sergeant is SSgt Daniel Okafor."""

COMMON = {"sergeant", "send", "forward", "ask", "the", "cordon", "halt", "check"}


@pytest.fixture(scope="module")
def grounds() -> Grounds:
    return Grounds([NOTES], common_words=COMMON)


def flagged(grounds: Grounds, sentence: str) -> str:
    """The checker's complaint about ``sentence``; fails the test if there is none."""
    problem = grounds.check(sentence)
    assert problem is not None, f"not flagged: {sentence!r}"
    return problem


@pytest.mark.parametrize("sentence", [
    "The cordon is 200 m.",
    "The cordon is two hundred metres.",
    "CEDAR is at grid 33T VM 5120 7180.",
    "CEDAR is at five one two zero seven one eight zero.",
    "The primary is 44.175 MHz.",
    "The primary is four four decimal one seven five.",
    "The alternate is 46.9 MHz.",  # the notes write 46.900
    "The alternate is 46.900 MHz.",
    "We step off at 11:00.",  # the notes write 1100
    "We step off at eleven hundred.",
    "BULLDOG 5 brings up the rear.",
    "BULLDOG 1, 2 and 3 lead.",
    "Send the codeword CHECKMATE.",
    "Send Sergeant Brandt forward.",  # "sergeant" is an ordinary word
    "Brandt commands BULLDOG 2.",  # a sentence-start capital is no name
    "Halt now. Check the verge. Ask Okafor.",
    "Check with Okafor: He knows the drill.",  # a capital after a colon starts a clause
], ids=str)
def test_what_the_notes_hold_passes(grounds: Grounds, sentence: str) -> None:
    assert grounds.check(sentence) is None


@pytest.mark.parametrize(("sentence", "invented"), [
    # a right fact beside an invented one in the same sentence
    ("The cordon is 200 m and the bypass is 350 m.", "350"),
    ("The primary is 44.175 MHz, and HAWK is on 51.2 MHz.", "51.2"),
    # a value spelled in words
    ("The cordon is three hundred metres.", "300"),
    ("Hold at four hundred and fifty metres.", "450"),
    # a grid with one digit changed
    ("CEDAR is at grid 33T VM 5120 7181.", "7181"),
    ("CEDAR is at five one two zero seven one eight one.", "7181"),
    # a frequency one digit off
    ("The primary is 44.176 MHz.", "44.176"),
    ("The alternate is 46.95 MHz.", "46.95"),
    # a time
    ("We step off at 12:00.", "1200"),
    # a callsign number no one has, a codeword no one uses
    ("BULLDOG 7 is late.", "BULLDOG 7"),
    ("Send the codeword VIPER.", "VIPER"),
    # a name the notes never mention
    ("Send Sergeant Miller forward.", "Miller"),
    ("Hand over to Sergeant Miller.", "Miller"),  # a name that ends the sentence
    ("Is that Miller?", "Miller"),
    ("Check with Miller: he has it.", "Miller"),
], ids=lambda value: str(value))
def test_an_invented_value_is_flagged(grounds: Grounds, sentence: str, invented: str) -> None:
    assert invented in flagged(grounds, sentence)


def test_a_callsign_number_is_checked_with_its_name(grounds: Grounds) -> None:
    """7 is a number the notes hold (LOGPAC 7), but BULLDOG 7 is still no callsign."""
    assert "7" in grounds.numbers
    problem = flagged(grounds, "BULLDOG 7 is at CEDAR.")
    assert "BULLDOG 7" in problem
    assert grounds.check("LOGPAC 7 is at CEDAR.") is None


def test_only_the_invented_values_are_named(grounds: Grounds) -> None:
    problem = flagged(grounds, "BULLDOG 3 holds at 200 m, BULLDOG 9 at 250 m; tell Miller.")
    assert "250" in problem and "Miller" in problem
    assert "9" in problem  # a number nothing holds is named bare, not as "BULLDOG 9"
    assert "200" not in problem and "BULLDOG 3" not in problem


def test_grounds_grow_as_the_session_goes_on() -> None:
    grounds = Grounds(["Troop net 44.175 MHz."])
    assert grounds.check("Casualty at km 12.4, grid 4930 7102.") is not None
    grounds.add("BULLDOG 1: casualty at km 12.4, grid 33T VM 4930 7102.")
    assert grounds.check("Casualty at km 12.4, grid 4930 7102.") is None
    grounds.add("Operator: the alternate is four six decimal nine")  # the operator's words
    assert grounds.check("The alternate is 46.9.") is None


def test_without_common_words_a_capitalised_inner_word_must_be_in_the_text() -> None:
    grounds = Grounds(["The troop sergeant is SSgt Okafor."])
    assert grounds.check("Ask the Sergeant.") is None  # "sergeant" is in the text
    assert "Colonel" in flagged(grounds, "Ask the Colonel.")


def test_figures_and_numbers() -> None:
    assert figures("two hundred metres") == "200 metres"
    assert figures("two hundred and fifty") == "250"
    assert figures("four nine three zero seven one zero two") == "4930 7102"
    assert figures("four four decimal one seven five") == "44.175"
    assert numbers("1,200 L at 11:30, 46.900 MHz and 9.0 km") == ["1200", "1130", "46.9", "9"]
    assert numbers("BULLDOG 1,2") == ["1", "2"]


@given(st.integers(min_value=0, max_value=10**7), st.integers(min_value=0, max_value=10**7))
def test_any_number_of_the_text_passes_and_any_other_fails(held: int, other: int) -> None:
    grounds = Grounds([f"The limit is {held} m."])
    assert grounds.check(f"It is {held} m.") is None
    problem = grounds.check(f"It is {other} m.")
    assert (problem is None) is (other == held)


@given(st.integers(min_value=0, max_value=999), st.integers(min_value=1, max_value=999),
       st.integers(min_value=0, max_value=3))
def test_a_decimal_passes_however_many_zeros_it_ends_in(whole: int, fraction: int,
                                                        zeros: int) -> None:
    digits = str(fraction).rstrip("0")
    grounds = Grounds([f"Set {whole}.{digits}{'0' * zeros} MHz."])
    assert grounds.check(f"Use {whole}.{digits} MHz.") is None
    assert grounds.check(f"Use {whole}.{digits}0 MHz.") is None


def test_a_capital_letter_standing_alone_is_a_value() -> None:
    grounds = Grounds(["Category URGENT. Plan B is the ground route. Zone C at km 3."])
    assert grounds.check("Ellis's blood group is A.")  # invented
    assert grounds.check("Go to zone D.")
    assert grounds.check("Use plan B now.") is None
    assert grounds.check("A casualty is urgent.") is None  # the article
    assert grounds.check("I am not sure.") is None


def test_the_article_a_in_the_notes_grounds_no_letter() -> None:
    """"A" that starts a sentence, a list item or a heading of the notes is the article: it lets
    no reply state a letter A as a value; "category A" inside a sentence does."""
    grounds = Grounds(["Convoy: planned 1100-1500. A convoy late past 1500 waits.\n"
                       "- A second pass needs an hour.\n## A note on casualties"])
    assert grounds.check("Ellis's blood group is A.")
    assert Grounds(["Evacuate as category A."]).check("Ellis is category A.") is None


@pytest.mark.parametrize(("sentence", "phrases"), [
    ("BULLDOG 2 is with SSgt Daniel Okafor.", ["BULLDOG 2", "SSgt Daniel Okafor"]),
    ("The grid for CP1 ALDER is 33T VM 4385 6912.", ["CP1 ALDER", "33T VM 4385 6912"]),
    ("BULLDOG 1 has 86% (172 L), BULLDOG 2 has 81%.", ["BULLDOG 1", "86% (172 L", "BULLDOG 2",
                                                       "81%"]),
    ("Her blood group is A.", ["A"]),
    ("Halt. Do not drive forward; send \"CHECKMATE\" now.", ["CHECKMATE"]),
    ("The market in Oresk is on 0900-1300.", ["Oresk", "0900-1300"]),
    ("I think I can do that.", []),
])
def test_value_phrases_are_the_runs_of_words_that_state_values(sentence: str,
                                                               phrases: list[str]) -> None:
    found = value_phrases(sentence)
    assert found == phrases
    assert all(phrase in sentence for phrase in found)  # as written, to be found in the reply
