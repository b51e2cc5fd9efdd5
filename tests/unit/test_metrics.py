"""Word error rate: edit counts, normalisation, and the undefined case of an empty reference."""

from __future__ import annotations

import pytest

from twin.metrics import WordErrors, normalize_words, number_words, word_error_rate, word_errors

pytestmark = pytest.mark.unit


def test_identical_texts_have_no_errors() -> None:
    assert word_error_rate("go forward ten meters", "go forward ten meters") == 0.0
    assert word_errors("go forward ten meters", "go forward ten meters") == WordErrors(0, 0, 0, 4)


def test_substitution_insertion_and_deletion_are_counted() -> None:
    assert word_errors("go forward ten meters", "go backward ten meters") == WordErrors(1, 0, 0, 4)
    assert word_errors("go forward ten meters", "go forward ten meters now") == \
        WordErrors(0, 0, 1, 4)
    assert word_errors("go forward ten meters", "go ten meters") == WordErrors(0, 1, 0, 4)
    mixed = word_errors("he was not an ill disposed young man", "he is not a ill disposed man man")
    # was->is, an->a, young->man (or: delete young, insert man): three edits either way
    assert mixed.errors == 3 and mixed.words == 8
    assert word_error_rate("he was not an ill disposed young man",
                           "he is not a ill disposed man man") == pytest.approx(3 / 8)


def test_a_hypothesis_can_exceed_a_rate_of_one() -> None:
    assert word_error_rate("stop", "please do not stop now") == pytest.approx(4.0)
    assert word_error_rate("go forward", "") == 1.0


def test_normalisation_ignores_case_punctuation_hyphens_and_digits() -> None:
    assert normalize_words("Go forward, 10 meters!") == ["go", "forward", "ten", "meters"]
    assert normalize_words("ill-disposed — cold-hearted") == ["ill", "disposed", "cold", "hearted"]
    assert normalize_words("Mr. Dashwood's 42 horses") == ["mister", "dashwoods", "forty", "two",
                                                           "horses"]
    assert normalize_words("route 0930") == ["route", "0930"]  # only 0-99 are spelled out
    assert word_error_rate("and mister john dashwood had then leisure",
                           "And Mr. John Dashwood had, then, leisure.") == 0.0
    assert word_error_rate("go forward ten meters", "Go forward 10 meters.") == 0.0
    assert word_error_rate("a cold hearted man", "A cold-hearted man") == 0.0


def test_number_words() -> None:
    assert [number_words(n) for n in (0, 7, 13, 20, 42, 99)] == [
        "zero", "seven", "thirteen", "twenty", "forty two", "ninety nine"]
    with pytest.raises(ValueError, match="0-99"):
        number_words(100)


def test_an_empty_reference_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no words"):
        word_error_rate("", "something")
    with pytest.raises(ValueError, match="no words"):
        word_error_rate(" ... ", "")
    with pytest.raises(ValueError, match="empty reference"):
        _ = WordErrors(0, 0, 2, 0).rate


def test_errors_pool_across_utterances() -> None:
    pooled = word_errors("go forward", "go back") + word_errors("stop here now", "stop here now")
    assert pooled == WordErrors(1, 0, 0, 5) and pooled.rate == pytest.approx(0.2)
