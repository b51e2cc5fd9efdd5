"""Speaking without a real voice: the phoneme->viseme table, the track's smoothing and coverage,
text normalisation, and the LipSync actor's queueing and interruption bookkeeping (with a fake
``Voice`` defined here: the component under test is the actor, not the voice)."""

# ruff: noqa: RUF001

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.lipsync import LipSync, split_first, split_text
from actors.visemes import (
    ARKIT_BLENDSHAPES,
    PHONEME_VISEMES,
    VISEMES,
    role_of,
    sounds_of,
    viseme_of,
    visemes_for,
)
from actors.voices import PhonemeSpan, Synthesis, align_words, normalize_text, text_words
from twin import models
from twin.messages import ActorError, Interrupt, Speech, SpeechCut, TwinUtterance, Viseme
from twin.testing import Harness

pytestmark = pytest.mark.unit

# ---------------------------------------------------------------------------- the table

ENGLISH_IPA = {
    # consonants of English as espeak-ng writes them
    "p": "PP", "b": "PP", "m": "PP", "f": "FF", "v": "FF", "θ": "TH", "ð": "TH",
    "t": "DD", "d": "DD", "ɾ": "DD", "k": "kk", "ɡ": "kk", "ŋ": "kk", "h": "kk", "ʔ": "kk",
    "tʃ": "CH", "dʒ": "CH", "ʃ": "CH", "ʒ": "CH", "s": "SS", "z": "SS", "n": "nn", "l": "nn",
    "ɹ": "RR", "ɚ": "RR", "w": "ou", "j": "ih",
    # vowels
    "ɑ": "aa", "a": "aa", "æ": "aa", "ʌ": "aa", "ɐ": "aa", "ɒ": "aa", "ɛ": "E", "e": "E",
    "ə": "E", "ɜ": "E", "ɪ": "ih", "i": "ih", "ᵻ": "ih", "o": "oh", "ɔ": "oh", "u": "ou",
    "ʊ": "ou",
}


def test_visemes_are_the_fifteen_oculus_ones_with_blendshapes() -> None:
    assert len(VISEMES) == 15
    assert set(PHONEME_VISEMES.values()) <= set(VISEMES)
    assert set(ARKIT_BLENDSHAPES) == set(VISEMES)
    for weights in ARKIT_BLENDSHAPES.values():
        assert all(0.0 <= w <= 1.0 for w in weights.values())
    assert ARKIT_BLENDSHAPES["PP"]["mouthClose"] > 0.5
    assert ARKIT_BLENDSHAPES["aa"]["jawOpen"] > ARKIT_BLENDSHAPES["ih"]["jawOpen"]
    assert ARKIT_BLENDSHAPES["ou"]["mouthPucker"] > 0.5


@pytest.mark.parametrize("symbol", sorted(ENGLISH_IPA))
def test_english_phonemes_map_to_their_viseme(symbol: str) -> None:
    assert viseme_of(symbol) == ENGLISH_IPA[symbol]


def test_every_symbol_of_the_piper_voice_has_a_place() -> None:
    try:
        folder = models.model_path("piper-joe-medium")
    except models.ModelError as error:
        pytest.skip(str(error))
    config = json.loads((folder / "en_US-joe-medium.onnx.json").read_text())
    symbols = config["phoneme_id_map"]
    assert len(symbols) > 100
    for symbol in symbols:
        role = role_of(symbol)
        if role == "sound":
            assert symbol in PHONEME_VISEMES, f"no viseme for {symbol!r}"
        else:
            assert viseme_of(symbol) == "sil"


@pytest.mark.parametrize(("symbol", "role"), [
    ("ˈ", "next"), ("ˌ", "next"), ("ː", "previous"), ("\u0303", "previous"), ("ʰ", "previous"),
    (" ", "boundary"), (",", "silence"), (".", "silence"), ("^", "silence"), ("$", "silence"),
    ("_", "silence"), ("", "silence"), ("?", "silence"), ("ɑ", "sound"), ("tʃ", "sound"),
])
def test_roles_of_marks_pauses_and_punctuation(symbol: str, role: str) -> None:
    assert role_of(symbol) == role


def test_espeak_multi_symbol_phonemes_split_into_sounds() -> None:
    assert sounds_of("oʊ") == ["oh", "ou"]
    assert sounds_of("aɪ") == ["aa", "ih"]
    assert sounds_of("ˈɑː") == ["aa"]
    assert sounds_of("tʃ") == ["CH"]
    assert sounds_of("əl") == ["E", "nn"]
    assert sounds_of("☃") == []


# ---------------------------------------------------------------------------- the track


def spans(*items: tuple[str, float]) -> list[PhonemeSpan]:
    """Contiguous spans from (phoneme, duration in ms)."""
    out: list[PhonemeSpan] = []
    at = 0.0
    for phoneme, ms in items:
        out.append(PhonemeSpan(phoneme, at, ms / 1000))
        at += ms / 1000
    return out


def total(track: list[Viseme]) -> float:
    return sum(v.duration for v in track)


def assert_covers(track: list[Viseme], duration: float) -> None:
    assert track[0].start == 0.0
    for before, after in itertools.pairwise(track):
        assert after.start == pytest.approx(before.start + before.duration, abs=1e-9)
        assert after.viseme != before.viseme
    assert total(track) == pytest.approx(duration, abs=1e-9)


def test_a_short_consonant_between_vowels_is_absorbed() -> None:
    # "a t a" with a 20 ms t: no flicker
    track = visemes_for(spans(("^", 50), ("ɑ", 120), ("t", 20), ("ɑ", 120), ("$", 60)), 0.37)
    assert_covers(track, 0.37)
    assert [v.viseme for v in track] == ["sil", "aa", "sil"]
    assert all(v.duration >= 0.04 for v in track)


def test_a_short_bilabial_keeps_its_closure() -> None:
    track = visemes_for(spans(("^", 50), ("ɑ", 120), ("m", 20), ("ɑ", 120), ("$", 60)), 0.37)
    assert_covers(track, 0.37)
    assert [v.viseme for v in track] == ["sil", "aa", "PP", "aa", "sil"]
    closure = track[2]
    assert closure.start == pytest.approx(0.17) and closure.duration == pytest.approx(0.02)


def test_stress_goes_to_the_vowel_and_length_to_the_sound_before() -> None:
    track = visemes_for(spans(("b", 60), ("ˈ", 50), ("ɑ", 60), ("ː", 50), ("t", 60)), 0.28)
    assert [(v.viseme, round(v.start, 3), round(v.duration, 3)) for v in track] == [
        ("PP", 0.0, 0.06), ("aa", 0.06, 0.16), ("DD", 0.22, 0.06)]


def test_word_boundaries_are_split_between_neighbours_not_silence() -> None:
    track = visemes_for(spans(("s", 60), (" ", 40), ("ɑ", 60)), 0.16)
    assert [(v.viseme, round(v.duration, 3)) for v in track] == [("SS", 0.08), ("aa", 0.08)]


def test_no_phonemes_or_no_audio() -> None:
    assert visemes_for([], 0.0) == []
    assert visemes_for([], 1.5) == [Viseme(viseme="sil", start=0.0, duration=1.5)]
    assert visemes_for(spans(("ˈ", 30), ("ː", 30)), 0.06)[0].viseme == "sil"


SYMBOLS = [*sorted(ENGLISH_IPA), "ˈ", "ˌ", "ː", " ", ",", ".", "^", "$", "_", "oʊ", "aɪ", "☃"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(SYMBOLS), st.integers(min_value=0, max_value=200)),
                min_size=1, max_size=40),
       st.integers(min_value=-30, max_value=30))
def test_any_stream_gives_a_contiguous_smoothed_track(items: list[tuple[str, int]],
                                                       slack_ms: int) -> None:
    phonemes = spans(*[(p, float(ms)) for p, ms in items])
    duration = max(0.001, sum(ms for _, ms in items) / 1000 + slack_ms / 1000)
    track = visemes_for(phonemes, duration)
    assert_covers(track, duration)
    if len(track) > 1:
        assert all(v.duration >= 0.04 - 1e-9 or v.viseme == "PP" for v in track)
    # a bilabial inside the audio is under a PP
    for span in phonemes:
        mid = span.start + span.duration / 2
        if span.phoneme in "pbm" and span.duration > 0 and mid < duration:
            held = next(v for v in track if v.start <= mid < v.start + v.duration)
            assert held.viseme == "PP"


# ---------------------------------------------------------------------------- text


@pytest.mark.parametrize(("text", "expected"), [
    ("Alpha-2, report.", "Alpha two, report."),
    ("H-hour is 0930Z.", "H hour is zero nine thirty Zulu."),
    ("Move 5 km north.", "Move five kilometres north."),
    ("Fuel at 40 %.", "Fuel at forty percent."),
    ("1 km", "one kilometre"),
    ("Switch to 44.175 MHz.", "Switch to forty four point one seven five megahertz."),
    ("Grid 33T VM 4930 7102.",
     "Grid three three Tango, Victor Mike, four nine three zero, seven one zero two."),
    ("Victor 2-1, wait 5-10 minutes.", "Victor two one, wait five to ten minutes."),
    ("1,250 rounds at 1400 hours",
     "one thousand two hundred fifty rounds at fourteen hundred hours"),
    ("the 3rd and 21st", "the third and twenty first"),
    ("ETA 0805Z, Sgt. Reyes", "E T A zero eight zero five Zulu, Sergeant Reyes"),
    ("-5 °C at 60 km/h", "minus five degrees Celsius at sixty kilometres per hour"),
    ("日本 ☃ 🙂 ok", "ok"),
    ("", ""),
    ("... ?!", ""),
])
def test_normalize_text(text: str, expected: str) -> None:
    assert normalize_text(text) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_normalize_text_never_raises_and_keeps_only_sayable_characters(text: str) -> None:
    spoken = normalize_text(text)
    assert not any(c.isdigit() for c in spoken)
    assert normalize_text(spoken) == spoken or spoken == ""


def test_words_align_to_groups_when_espeak_joins_or_splits_words() -> None:
    assert align_words(["a", "b"], [(0.0, 0.1), (0.2, 0.3)]) == [("a", 0.0, 0.1), ("b", 0.2, 0.3)]
    joined = align_words(["with", "the", "route"], [(0.0, 0.4), (0.5, 0.9)])
    assert [w for w, _, _ in joined] == ["with", "the", "route"]
    assert joined[0][1] == 0.0 and joined[1][2] == pytest.approx(0.4) and joined[2][1] == 0.5
    split = align_words(["IEDs", "no"], [(0.0, 0.1), (0.1, 0.2), (0.2, 0.3), (0.4, 0.5)])
    assert split[0] == ("IEDs", 0.0, 0.3) and split[1] == ("no", 0.4, 0.5)
    assert align_words([], [(0.0, 1.0)]) == []


def test_a_long_first_sentence_is_split_at_its_first_clause() -> None:
    long = ("Refuel at the MERCER fuel point after the hand-over: 2 pumps, about 10 minutes per "
            "vehicle, so about 30 minutes for the package.")
    assert split_first(long, 90) == [
        "Refuel at the MERCER fuel point after the hand-over:",
        "2 pumps, about 10 minutes per vehicle, so about 30 minutes for the package."]
    assert split_first("Short, and sweet.", 90) == ["Short, and sweet."]
    no_clause = "word " * 30
    assert split_first(no_clause, 90) == [no_clause.strip()]
    assert split_first(f"{'x' * 100}, then the rest of it", 90) == [f"{'x' * 100}, then the "
                                                                       "rest of it"]
    assert split_first("", 90) == []


def test_split_text_at_sentences_then_clauses_then_words() -> None:
    assert split_text("  ", 50) == []
    assert split_text("One. Two! Three?", 50) == ["One.", "Two!", "Three?"]
    long = ", ".join(f"clause number {i} of it" for i in range(20)) + "."
    pieces = split_text(long, 60)
    assert all(len(p) <= 60 for p in pieces) and len(pieces) > 5
    assert " ".join(pieces) == long
    assert all(len(p) <= 25 for p in split_text("x" * 100, 25))


# ---------------------------------------------------------------------------- the actor


class FakeVoice:
    """Each sentence: ``seconds`` of silence, words spread evenly, after ``delay`` seconds."""

    name = "fake"
    sample_rate = 22050

    def __init__(self, seconds: float = 1.0, delay: float = 0.02, fail_on: str = "") -> None:
        self.seconds = seconds
        self.delay = delay
        self.fail_on = fail_on
        self.calls: list[tuple[str, float, float]] = []  # text, began, ended (monotonic)
        self._lock = threading.Lock()

    def synthesize(self, text: str) -> Synthesis:
        began = time.monotonic()
        time.sleep(self.delay)
        if self.fail_on and self.fail_on in text:
            raise RuntimeError("the fake voice fails on purpose")
        spoken = normalize_text(text)
        words = text_words(spoken)
        if not words:
            return Synthesis(text="", pcm=b"", sample_rate=self.sample_rate)
        step = self.seconds / len(words)
        with self._lock:
            self.calls.append((text, began, time.monotonic()))
        return Synthesis(
            text=spoken, pcm=bytes(2 * round(self.seconds * self.sample_rate)),
            sample_rate=self.sample_rate,
            phonemes=[PhonemeSpan("ɑ", i * step, step) for i in range(len(words))],
            words=[(w, i * step, (i + 1) * step) for i, w in enumerate(words)],
        )


SENTENCES = ["Route Copper is clear to phase line Maple.",
             "The culvert at grid 4930 7102 needs a check.",
             "Convoy may move at 0930Z."]


def utterances(turn: int, texts: list[str] = SENTENCES) -> list[TwinUtterance]:
    return [TwinUtterance(turn=turn, text=text, index=i, final=i == len(texts) - 1,
                          expression="concerned" if i == 1 else "calm")
            for i, text in enumerate(texts)]


def run_async(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """A sync test that runs the coroutine (with a time limit)."""

    @functools.wraps(test)
    def runner() -> None:
        asyncio.run(asyncio.wait_for(test(), 30))

    return runner


def lipsync(voice: FakeVoice, **settings: object) -> LipSync:
    return LipSync({"warm_up": False, **settings}, voice=voice)


@run_async
async def test_sentences_become_speech_in_order_first_before_the_last_is_synthesised() -> None:
    voice = FakeVoice(seconds=1.0, delay=0.1)
    arrived: dict[int, float] = {}
    async with Harness(lipsync(voice)) as h:
        h.probe.callback = lambda m: isinstance(m, Speech) and arrived.setdefault(
            m.index, time.monotonic()) and None
        for utterance in utterances(3):
            await h.send(utterance)
        await h.wait_for(Speech, lambda s: s.final)
        speech = h.probe.messages(Speech)
    assert [s.index for s in speech] == [0, 1, 2]
    assert [s.final for s in speech] == [False, False, True]
    assert {s.turn for s in speech} == {3}
    assert [s.expression for s in speech] == ["calm", "concerned", "calm"]
    assert speech[2].text == "Convoy may move at zero nine thirty Zulu."
    assert all(s.sample_rate == 22050 and len(s.pcm) == 2 * 22050 for s in speech)
    for s in speech:
        assert s.visemes[0].start == 0.0
        assert sum(v.duration for v in s.visemes) == pytest.approx(1.0)
        assert s.words[-1].end == pytest.approx(1.0)
    last_began = voice.calls[2][1]
    assert arrived[0] < last_began


@run_async
async def test_interrupt_cuts_the_turn_and_reports_what_was_heard() -> None:
    voice = FakeVoice(seconds=2.0, delay=0.05)
    async with Harness(lipsync(voice)) as h:
        for utterance in utterances(7):
            await h.send(utterance)
        first = await h.wait_for(Speech)
        await asyncio.sleep(0.6)
        await h.send(Interrupt(turn=8, target_turn=7))
        cut = await h.wait_for(SpeechCut)
        await h.send(TwinUtterance(turn=7, text="A late sentence of the cut reply.", index=3,
                                   final=True))
        await asyncio.sleep(0.3)
        speech = h.probe.messages(Speech)
    assert cut.turn == 7 and cut.reason == "barge-in"
    assert cut.sentence_index == 0
    assert 0.5 <= cut.at_seconds <= 1.2
    heard = cut.spoken_text.split()
    assert 2 <= len(heard) <= 6 and first.text.startswith(" ".join(heard))
    assert cut.unspoken_text.endswith("Zulu.") and "late" not in cut.unspoken_text
    # all three were out (synthesis is faster than playback): none dropped, the late one ignored
    assert cut.dropped == 0 and len(speech) == 3
    assert all(s.seq < cut.seq for s in speech)


@run_async
async def test_interrupt_between_sentences_and_after_the_end() -> None:
    voice = FakeVoice(seconds=0.05, delay=0.01)
    async with Harness(lipsync(voice)) as h:
        for utterance in utterances(1):
            await h.send(utterance)
        await h.wait_for(Speech, lambda s: s.final)
        await asyncio.sleep(0.3)  # the three 50 ms sentences have played back to back
        await h.send(Interrupt(target_turn=1))  # everything was played: nothing to cut
        await asyncio.sleep(0.1)
        assert h.probe.messages(SpeechCut) == []

        voice.delay = 0.3  # second turn: the cut comes while sentence 1 is being synthesised
        for utterance in utterances(2):
            await h.send(utterance)
        await h.wait_for(Speech, lambda s: s.turn == 2)
        await asyncio.sleep(0.15)
        await h.send(Interrupt(target_turn=None))  # None: whatever is being said
        cut = await h.wait_for(SpeechCut)
        await asyncio.sleep(0.5)
        turn_two = [s for s in h.probe.messages(Speech) if s.turn == 2]
    assert cut.turn == 2 and cut.sentence_index == 0
    assert cut.at_seconds == pytest.approx(0.05)
    assert cut.spoken_text == turn_two[0].text
    assert cut.dropped == 2 and len(turn_two) == 1


@run_async
async def test_empty_long_and_failing_text() -> None:
    voice = FakeVoice(seconds=0.2, delay=0.0, fail_on="explode")
    long = " ".join(f"Sentence {i} says something, and then something more." for i in range(12))
    async with Harness(lipsync(voice, max_chars=60)) as h:
        await h.send(TwinUtterance(turn=1, text="", index=0, final=False))
        await h.send(TwinUtterance(turn=1, text=" ☃ ", index=1, final=False))
        await h.send(TwinUtterance(turn=1, text="Please explode.", index=2, final=False))
        await h.send(TwinUtterance(turn=1, text=long, index=3, final=True))
        await h.wait_for(Speech, lambda s: s.final)
        speech = h.probe.messages(Speech)
        errors = h.probe.messages(ActorError)
    assert len(speech) >= 12
    assert [s.index for s in speech] == list(range(len(speech)))
    assert all(len(s.text) <= 80 for s in speech)
    assert [s.final for s in speech].count(True) == 1
    assert len(errors) == 1 and "on purpose" in errors[0].error


def test_required_models_name_the_registry_voice_only() -> None:
    assert LipSync.required_models(LipSync.Settings()) == ("piper-joe-medium",)
    assert LipSync.required_models(LipSync.Settings(voice="/voices/x.onnx")) == ()
    with pytest.raises(ValueError, match="extra"):
        LipSync.Settings(speed=2)
