"""End of turn: the policy's waits, the word rules, and the turn set's paused clips."""

from __future__ import annotations

import numpy as np
import pytest

from actors.turn import EndOfTurn, finished, unfinished
from twin.turn_set import TurnClip, voice_bounds, with_pause

pytestmark = pytest.mark.unit


def test_words_that_trail_off_and_questions_that_end() -> None:
    for said in ["Take the north road and", "Give me the grid of", "It is, uh",
                 "Bulldog two, then the", "The casualty is at,"]:
        assert unfinished(said), said
    for said in ["Go forward ten meters.", "Where is it from?", "Yes, we do.", "Thank you",
                 "Say again", ""]:
        assert not unfinished(said), said
    assert finished("Can we get a helicopter in or not?")
    assert not finished("Can we get a helicopter in.") and not finished("Is it the?")


def test_the_wait_follows_the_model_the_words_and_the_habits() -> None:
    turn = EndOfTurn(complete_pause_ms=200, unsure_pause_ms=800, max_pause_ms=2000)
    assert turn.wait_ms(0.9, None) == 800  # finished-sounding, but no words yet
    assert turn.wait_ms(0.9, "Go forward ten meters.") == 200
    assert turn.wait_ms(0.9, "Go forward and") == 2000  # the words trail off
    assert turn.wait_ms(0.1, "He was not an ill disposed young man.") == 800
    assert turn.wait_ms(0.1, "Is the road open?") == 200  # a question, written as one
    assert turn.wait_ms(None, "Is the road open?") == 200
    turn.went_on(500)
    assert turn.complete_wait() == 200  # one long pause is not a habit
    turn.went_on(600)
    turn.went_on(550)
    assert 600 <= turn.complete_wait() <= 700  # beyond most of their pauses
    assert turn.wait_ms(0.9, "Go forward.") == turn.complete_wait()
    for _ in range(5):
        turn.went_on(5000)
    assert turn.complete_wait() == 800  # never beyond the unsure wait
    fixed = EndOfTurn(learn=False)
    fixed.went_on(600)
    fixed.went_on(600)
    assert fixed.complete_wait() == fixed.complete_pause


def test_a_pause_is_put_at_a_quiet_point_inside_the_voice() -> None:
    rng = np.random.default_rng(0)
    room = (rng.normal(0, 30, 8000)).astype(np.int16)  # 0.5 s of room noise
    word = (np.sin(np.arange(4800) / 5) * 8000).astype(np.int16)  # 0.3 s of "voice"
    gap = (rng.normal(0, 30, 800)).astype(np.int16)  # 50 ms between the words
    samples = np.concatenate([room, word, gap, word, room])
    start, end = voice_bounds(samples)
    assert start == pytest.approx(0.5, abs=0.02) and end == pytest.approx(1.15, abs=0.02)
    clip = TurnClip("two words", samples, "", end)
    paused = with_pause(clip, 0.5, start)
    assert paused.group == "paused" and paused.voice_end == pytest.approx(end + 0.5)
    assert paused.pause_at is not None and 0.8 <= paused.pause_at <= 0.85  # in the gap
    assert len(paused.samples) == len(samples) + 8000
    inside = paused.samples[int(paused.pause_at * 16000):int((paused.pause_at + 0.5) * 16000)]
    assert np.abs(inside).max() < 300  # room noise, not voice
