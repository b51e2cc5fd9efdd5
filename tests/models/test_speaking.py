"""Speaking with the real voices: piper's joe voice (and the espeak-ng fallback) recognised back
by faster-whisper tiny.en, viseme tracks against the real alignments, and the LipSync actor on a
LocalBus with the real piper voice."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actors.lipsync import LipSync
from actors.visemes import visemes_for
from actors.voices import EspeakVoice, PiperVoice, Synthesis, Voice, load_voice, normalize_text
from twin import models
from twin.messages import Interrupt, Speech, SpeechCut, TwinUtterance
from twin.testing import Harness

pytestmark = pytest.mark.models


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level edit distance over the reference length."""
    ref, hyp = _words(reference), _words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[-1] / max(len(ref), 1)


def _words(text: str) -> list[str]:
    # whisper writes digits, US spellings and "per cent" its own way: compare what is said
    text = normalize_text(text).lower().replace("kilometer", "kilometre")
    for short, full in CONTRACTIONS.items():
        text = re.sub(rf"\b{short}\b", full, text)
    return re.findall(r"[a-z']+", text.replace("-", " "))


CONTRACTIONS = {"i'm": "i am", "we're": "we are", "it's": "it is", "that's": "that is",
                "don't": "do not", "can't": "cannot", "won't": "will not"}


@pytest.fixture(scope="module")
def piper() -> PiperVoice:
    voice = load_voice("piper-joe-medium", fallback=False)
    assert isinstance(voice, PiperVoice)
    return voice


@pytest.fixture(scope="module")
def espeak() -> EspeakVoice:
    return EspeakVoice()


@pytest.fixture(scope="module")
def whisper() -> Any:
    from faster_whisper import WhisperModel

    return WhisperModel(str(models.model_path("whisper-tiny.en")), device="cpu",
                        compute_type="int8", cpu_threads=2)


def recognise(whisper: Any, synthesis: Synthesis) -> str:
    import soxr

    audio = np.frombuffer(synthesis.pcm, dtype=np.int16).astype(np.float32) / 32768
    audio = soxr.resample(audio, synthesis.sample_rate, 16000)
    segments, _ = whisper.transcribe(audio, language="en", beam_size=1)
    return " ".join(segment.text for segment in segments)


SENTENCES = [
    "The route is clear to phase line Maple.",
    "Engineers are checking the culvert before the convoy moves.",
    "I am not certain about the bridge, verify with the brigade.",
    "The weather will stay dry and clear for the rest of the day.",
]


def test_piper_speech_is_recognised_back(piper: PiperVoice, whisper: Any) -> None:
    # piper samples its noise afresh each time and whisper tiny is small ("Engineers" once came
    # back as "Engine airs or"): bound the whole set, and each sentence loosely
    errors, words = 0.0, 0
    for sentence in SENTENCES:
        heard = recognise(whisper, piper.synthesize(sentence))
        rate = wer(sentence, heard)
        assert rate <= 0.5, (sentence, heard)
        errors += rate * len(_words(sentence))
        words += len(_words(sentence))
    assert errors / words <= 0.15


@pytest.mark.parametrize(("text", "said"), [
    ("Alpha-2, move now.", ["alpha", "two"]),
    ("Convoy departs at 0930Z.", ["nine", "zulu"]),  # "thirty" may come back as "0930"
    ("The checkpoint is 5 km ahead.", ["five", "kilometres"]),
    ("Fuel is at 40 %.", ["forty", "percent"]),
])
def test_numbers_units_and_callsigns_are_spoken_sensibly(piper: PiperVoice, whisper: Any,
                                                         text: str, said: list[str]) -> None:
    # piper samples its noise afresh each time and whisper tiny is small: two takes
    takes = [_words(recognise(whisper, piper.synthesize(text))) for _ in range(2)]
    assert any(all(word in heard for word in said) for heard in takes), (text, takes)


def check_output(synthesis: Synthesis) -> None:
    """What every voice gives: audio, phonemes and words in step with it, a covering track."""
    assert synthesis.sample_rate == 22050 and len(synthesis.pcm) % 2 == 0
    assert synthesis.duration > 0.5
    frame = 1 / synthesis.sample_rate
    assert synthesis.phonemes[0].start == 0.0
    assert sum(p.duration for p in synthesis.phonemes) == pytest.approx(synthesis.duration,
                                                                        abs=frame)
    for word, start, end in synthesis.words:
        assert word and 0 <= start <= end <= synthesis.duration + frame
    track = visemes_for(synthesis.phonemes, synthesis.duration)
    assert track[0].start == 0.0
    assert abs(sum(v.duration for v in track) - synthesis.duration) <= frame
    for before, after in itertools.pairwise(track):
        assert after.start == pytest.approx(before.start + before.duration, abs=1e-9)
    # the lips close on every p, b and m, when the alignment says
    bilabials = [p for p in synthesis.phonemes if p.phoneme[:1] in ("p", "b", "m")]
    assert bilabials
    for span in bilabials:
        mid = span.start + span.duration / 2
        held = next(v for v in track if v.start <= mid < v.start + v.duration)
        assert held.viseme == "PP", (span, held)
        overlap = min(held.start + held.duration, span.start + span.duration) - max(
            held.start, span.start)
        assert overlap >= 0.5 * span.duration


BILABIAL = "Bravo team, move up to the bump by the map point, then stop. Mike, probe the bank!"


def test_piper_output_and_viseme_track(piper: PiperVoice) -> None:
    synthesis = piper.synthesize(BILABIAL)
    check_output(synthesis)
    assert len(synthesis.words) == len(synthesis.text.split())
    assert {"^", "$", " "} <= {p.phoneme for p in synthesis.phonemes}


def test_espeak_fallback_gives_the_same_kind_of_output(
    espeak: EspeakVoice, whisper: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        voice = load_voice(str(tmp_path / "absent.onnx"))
    assert isinstance(voice, EspeakVoice)
    assert "espeak-ng instead" in caplog.text
    synthesis = voice.synthesize(BILABIAL)
    check_output(synthesis)
    assert len(synthesis.words) == len(synthesis.text.split())
    sentence = SENTENCES[0]
    assert wer(sentence, recognise(whisper, espeak.synthesize(sentence))) <= 0.3


def test_a_missing_voice_without_fallback_names_the_fetch_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWIN_MODELS", str(tmp_path))
    with pytest.raises(models.ModelMissing, match="twin models fetch piper-joe-medium"):
        load_voice("piper-joe-medium", fallback=False)
    assert isinstance(load_voice("piper-joe-medium"), EspeakVoice)


def test_empty_and_unsayable_text(piper: PiperVoice, espeak: EspeakVoice) -> None:
    for voice in (piper, espeak):
        for text in ("", "  ", "☃ 🙂", "..."):
            synthesis = voice.synthesize(text)
            assert synthesis.pcm == b"" and synthesis.duration == 0.0


# ---------------------------------------------------------------------------- the actor


class Recording:
    """The real voice, with the time each synthesis began (to see the streaming order)."""

    def __init__(self, voice: Voice) -> None:
        self.voice = voice
        self.name = voice.name
        self.sample_rate = voice.sample_rate
        self.began: list[float] = []
        self._lock = threading.Lock()

    def synthesize(self, text: str) -> Synthesis:
        with self._lock:
            self.began.append(time.monotonic())
        return self.voice.synthesize(text)


REPLY = [
    "Copy, Bravo two.",
    "The route to phase line Maple is clear of obstacles, and the culvert at the bridge was "
    "checked by the engineers this morning.",
    "Convoy may move at 0930Z, keep five hundred metres between vehicles.",
]


@pytest.fixture
def run() -> Iterator[Any]:
    def runner(coroutine: Any) -> Any:
        return asyncio.run(asyncio.wait_for(coroutine, 120))

    yield runner


def test_lipsync_streams_a_reply_in_order_and_stops_on_interrupt(piper: PiperVoice,
                                                                  run: Any) -> None:
    voice = Recording(piper)
    arrived: list[float] = []

    async def scenario() -> tuple[list[Speech], list[Speech], SpeechCut]:
        async with Harness(LipSync({"warm_up": False}, voice=voice)) as h:
            h.probe.callback = lambda m: arrived.append(time.monotonic()) if isinstance(
                m, Speech) else None
            for i, text in enumerate(REPLY):
                await h.send(TwinUtterance(turn=1, text=text, index=i, final=i == 2,
                                           expression="positive"))
            await h.wait_for(Speech, lambda s: s.final)
            whole = h.probe.messages(Speech)

            for i, text in enumerate(REPLY):
                await h.send(TwinUtterance(turn=2, text=text, index=i, final=i == 2))
            await h.wait_for(Speech, lambda s: s.turn == 2)
            await h.send(Interrupt(turn=3, target_turn=2))
            cut = await h.wait_for(SpeechCut)
            await asyncio.sleep(1.0)
            second = [s for s in h.probe.messages(Speech) if s.turn == 2]
            return whole, second, cut

    whole, second, cut = run(scenario())
    assert [s.index for s in whole] == [0, 1, 2]
    assert [s.final for s in whole] == [False, False, True]
    assert all(s.turn == 1 and s.expression == "positive" for s in whole)
    assert "zero nine thirty Zulu" in whole[2].text
    assert arrived[0] < voice.began[2]  # the first sentence was out before the last was begun
    for speech in whole:
        seconds = len(speech.pcm) / 2 / speech.sample_rate
        assert abs(sum(v.duration for v in speech.visemes) - seconds) <= 1 / speech.sample_rate
        assert speech.words and speech.words[-1].end <= seconds
    # turn 2 was cut while sentence 0 played: sentence 1 was being synthesised, 2 was queued
    assert cut.turn == 2 and cut.sentence_index == 0
    assert 0 <= cut.at_seconds < 1.0
    assert cut.dropped >= 1 and "Zulu" in cut.unspoken_text
    assert len(second) == 3 - cut.dropped
    assert all(s.seq < cut.seq for s in second)


def test_a_reply_withdrawn_before_it_began_is_never_spoken(piper: PiperVoice, run: Any) -> None:
    """The operator went on with their turn before the twin said anything: the interrupt for
    that turn comes before its reply does, and nothing of that reply is spoken."""

    async def scenario() -> tuple[list[Speech], list[SpeechCut]]:
        async with Harness(LipSync({"warm_up": False}, voice=Recording(piper))) as h:
            await h.send(Interrupt(turn=5, target_turn=4, reason="operator went on"))
            for i, text in enumerate(REPLY[:2]):
                await h.send(TwinUtterance(turn=4, text=text, index=i, final=i == 1))
            await h.send(TwinUtterance(turn=5, text=REPLY[0], index=0, final=True))
            await h.wait_for(Speech, lambda s: s.turn == 5, timeout=30)
            return h.probe.messages(Speech), h.probe.messages(SpeechCut)

    spoken, cuts = run(scenario())
    assert [s.turn for s in spoken] == [5]
    assert cuts == []  # nothing was being said: nothing to cut
