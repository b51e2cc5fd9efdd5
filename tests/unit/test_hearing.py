"""Hearing without Ray: reading and resampling audio, turn detection on real speech, barge-in."""

from __future__ import annotations

import asyncio
import json
import time
import wave
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from actors.audio import AudioError, Framer, Resampler, read_wav
from actors.speech import SpeechRecognizer, SpeechSettings
from actors.vad import CHUNK, CHUNK_S, Endpointer, SileroVAD
from twin.messages import (
    AudioFrame,
    Interrupt,
    Metric,
    Speech,
    SpeechCut,
    SpeechEnded,
    SpeechStarted,
    Transcript,
)
from twin.testing import Harness

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "speech"
CLIPS = json.loads((FIXTURES / "transcripts.json").read_text())["clips"]
Audio = npt.NDArray[np.float32]


def load(name: str) -> Audio:
    if name.endswith(".raw"):
        pcm = np.frombuffer((FIXTURES / name).read_bytes(), "<i2")
        return (pcm.astype(np.float32) / 32768).astype(np.float32)
    return read_wav(FIXTURES / name).samples[:, 0]


def silence(seconds: float) -> Audio:
    return np.zeros(int(seconds * 16000), np.float32)


def write_wav(path: Path, samples: npt.NDArray[Any], rate: int, width: int = 2) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1 if samples.ndim == 1 else samples.shape[1])
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 120))


# ---------------------------------------------------------------------------- reading audio


def test_read_wav_converts_every_pcm_width_to_the_same_signal(tmp_path: Path) -> None:
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).astype(np.float32)
    as16 = write_wav(tmp_path / "16.wav", (tone * 32767).astype("<i2"), 8000)
    as8 = write_wav(tmp_path / "8.wav", (tone * 127 + 128).astype(np.uint8), 8000, width=1)
    as32 = write_wav(tmp_path / "32.wav", (tone.astype(np.float64) * (2**31 - 1)).astype("<i4"),
                     8000, width=4)
    wide = (tone * (2**23 - 1)).astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].reshape(-1)
    as24 = write_wav(tmp_path / "24.wav", wide, 8000, width=3)
    for path, tolerance in ((as16, 1e-4), (as8, 2 / 128), (as24, 1e-4), (as32, 1e-4)):
        audio = read_wav(path)
        assert audio.sample_rate == 8000 and audio.channels == 1 and not audio.truncated
        assert np.max(np.abs(audio.samples[:, 0] - tone)) < tolerance, path.name


def test_bad_wav_files_give_clear_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioError, match=r"garbage\.wav: not a PCM wav"):
        read_wav(garbage)
    with pytest.raises(AudioError, match="no such audio file"):
        read_wav(tmp_path / "missing.wav")
    header_only = tmp_path / "header.wav"
    header_only.write_bytes((FIXTURES / "sense_and_sensibility_01_austen_64kb-0880.wav")
                            .read_bytes()[:30])
    with pytest.raises(AudioError, match=r"header\.wav"):
        read_wav(header_only)
    float_wav = tmp_path / "float.wav"  # IEEE float, format 3: the stdlib reader refuses it
    data = np.zeros(100, "<f4").tobytes()
    header = (b"RIFF" + (36 + len(data)).to_bytes(4, "little") + b"WAVEfmt "
              + (16).to_bytes(4, "little") + (3).to_bytes(2, "little") + (1).to_bytes(2, "little")
              + (16000).to_bytes(4, "little") + (64000).to_bytes(4, "little")
              + (4).to_bytes(2, "little") + (32).to_bytes(2, "little")
              + b"data" + len(data).to_bytes(4, "little"))
    float_wav.write_bytes(header + data)
    with pytest.raises(AudioError, match=r"float\.wav: not a PCM wav.*ffmpeg"):
        read_wav(float_wav)


def test_a_truncated_wav_keeps_what_it_has(tmp_path: Path) -> None:
    whole = (FIXTURES / "sense_and_sensibility_01_austen_64kb-0880.wav").read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole[: len(whole) // 2 + 1])  # half the data, and half a sample
    audio = read_wav(cut)
    full = read_wav(FIXTURES / "sense_and_sensibility_01_austen_64kb-0880.wav")
    assert audio.truncated
    assert audio.duration == pytest.approx(full.duration / 2, abs=0.01)


def test_resampling_keeps_pitch_and_length_and_mixes_channels() -> None:
    rate = 44100
    t = np.arange(rate) / rate
    left = 0.4 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([left, left], axis=1).astype(np.float32)
    resample = Resampler(rate, 2)
    # in two blocks, as a stream would come
    out = np.concatenate([resample(stereo[: rate // 3]), resample(stereo[rate // 3:], last=True)])
    assert abs(len(out) - 16000) <= 2
    spectrum = np.abs(np.fft.rfft(out.astype(np.float32)))
    peak_hz = np.argmax(spectrum) * 16000 / len(out)
    assert peak_hz == pytest.approx(440, abs=2)
    assert np.max(np.abs(out)) == pytest.approx(0.4 * 32767, rel=0.03)


def test_framer_cuts_100_ms_frames_with_their_stream_times() -> None:
    framer = Framer(100)
    frames = framer.push(np.ones(3900, np.int16)) + framer.push(np.ones(1000, np.int16))
    assert [start for start, _ in frames] == [0.0, 0.1, 0.2]
    assert all(len(pcm) == 3200 for _, pcm in frames)
    last = framer.flush()
    assert [start for start, _ in last] == [pytest.approx(0.3)]
    assert np.frombuffer(last[0][1], "<i2")[99:101].tolist() == [1, 0]  # padded with silence


# ---------------------------------------------------------------------------- turn detection


def detect(audio: Audio, **options: Any) -> list[tuple[str, float]]:
    vad, endpointer = SileroVAD(), Endpointer(**options)
    events = []
    for i in range(0, len(audio) - CHUNK + 1, CHUNK):
        events += [(e.kind, e.at) for e in endpointer.push(vad(audio[i:i + CHUNK]), i / 16000)]
    return events


def test_turns_on_real_recordings_match_the_reference_within_100_ms() -> None:
    parts, expected, t = [silence(1.0)], [], 1.0
    for name in ("sense_and_sensibility_01_austen_64kb-0880.wav", "goforward.raw",
                 "sense_and_sensibility_01_austen_64kb-0930.wav"):
        clip = load(name)
        start, end = CLIPS[name]["voice"]
        expected += [("started", t + start), ("ended", t + end)]
        parts += [clip, silence(1.5)]
        t += len(clip) / 16000 + 1.5
    events = detect(np.concatenate(parts))
    assert [kind for kind, _ in events] == [kind for kind, _ in expected]
    for (kind, at), (_, reference) in zip(events, expected, strict=True):
        assert at == pytest.approx(reference, abs=0.1), (kind, at, reference)


def test_silence_and_noise_start_no_turn_and_clipping_still_does() -> None:
    rng = np.random.default_rng(7)
    assert detect(silence(3.0)) == []
    assert detect((0.003 * rng.standard_normal(48000)).astype(np.float32)) == []
    clipped = np.clip(load("goforward.raw") * 20, -1, 1).astype(np.float32)  # badly clipped
    kinds = [kind for kind, _ in detect(np.concatenate([clipped, silence(1.0)]))]
    assert kinds[:1] == ["started"] and kinds[-1] == "ended"


def test_endpointer_rules() -> None:
    def feed(endpointer: Endpointer, probabilities: list[float]) -> list[tuple[str, float]]:
        out = []
        for n, p in enumerate(probabilities):
            out += [(e.kind, round(e.at, 3)) for e in endpointer.push(p, n * CHUNK_S)]
        return out

    short = [0.9] * 5 + [0.0] * 40  # 160 ms of voice: a cough, not a turn
    assert feed(Endpointer(min_speech_ms=250), short) == []
    # a one-syllable "Wait": 6 chunks above the threshold, its fading end held down to low
    word = [0.0] + [0.6, 0.8, 0.8, 0.8, 0.8, 0.7, 0.4] + [0.0] * 40
    assert [kind for kind, _ in feed(Endpointer(min_speech_ms=200), word)] == [
        "started", "ended"]
    assert feed(Endpointer(min_speech_ms=200), [0.0] + [0.6] * 6 + [0.4] + [0.0] * 40)[:1] == [
        ("started", round(CHUNK_S, 3))]
    turn = [0.0] * 3 + [0.9] * 20 + [0.0] * 5 + [0.45] + [0.0] * 20  # a 0.45 blip in the pause
    events = feed(Endpointer(min_speech_ms=250, end_silence_ms=500), turn)
    assert events == [("started", round(3 * CHUNK_S, 3)), ("ended", round(23 * CHUNK_S, 3))]
    endless = [0.9] * 100
    forced = feed(Endpointer(max_turn_s=1.0), endless)  # a turn never longer than 1 s
    assert [kind for kind, _ in forced[:2]] == ["started", "ended"]
    assert forced[1][1] - forced[0][1] == pytest.approx(1.0, abs=CHUNK_S)


# ---------------------------------------------------------------------------- barge-in


async def hear(harness: Harness, audio: Audio) -> None:
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    for n, i in enumerate(range(0, len(pcm), 1600)):
        await harness.send(AudioFrame(pcm=pcm[i:i + 1600].tobytes(), start=n * 0.1))
        await asyncio.sleep(0)


def test_the_end_of_a_turn_carries_when_the_voice_really_ended() -> None:
    """Frames arrive in real time, each when its last sample is due (as from a microphone):
    ``voice_end`` is the wall time of the end of the voice, ``end_silence_ms`` before the
    decision that the turn ended."""
    pcm = (np.concatenate([silence(0.5), load("goforward.raw"), silence(1.2)])
           * 32767).astype("<i2")
    arrivals: list[tuple[float, float]] = []  # (stream time of a frame's end, sent at)

    async def scenario() -> None:
        async with Harness(recognizer(end_of_turn="silence")) as harness:
            began = time.time()
            for n, i in enumerate(range(0, len(pcm), 1600)):
                await asyncio.sleep(max(0.0, began + (n + 1) * 0.1 - time.time()))
                arrivals.append(((n + 1) * 0.1, time.time()))
                await harness.send(AudioFrame(pcm=pcm[i:i + 1600].tobytes(), start=n * 0.1))
            ended = await harness.wait_for(SpeechEnded, timeout=10)
            end, sent = next((end, sent) for end, sent in arrivals if end >= ended.at)
            assert ended.voice_end == pytest.approx(sent - (end - ended.at), abs=0.03)
            assert ended.anchor == ended.voice_end
            assert ended.t - ended.voice_end == pytest.approx(0.5, abs=0.15)  # the wait

    run(scenario())


def twin_speech(seconds: float, turn: int) -> Speech:
    return Speech(text="The route is clear to checkpoint Birch.", index=0, final=True,
                  pcm=bytes(int(seconds * 22050) * 2), sample_rate=22050, turn=turn)


def recognizer(**settings: Any) -> SpeechRecognizer:
    return SpeechRecognizer({"barge_in_min_ms": 400, **settings}, name="speech")


def test_operator_speech_while_the_twin_speaks_interrupts_its_turn() -> None:
    async def scenario() -> None:
        async with Harness(recognizer()) as harness:
            await harness.send(twin_speech(30.0, turn=7), source="lipsync")
            await hear(harness, np.concatenate([silence(0.5), load("goforward.raw"),
                                                silence(1.0)]))
            interrupt = await harness.wait_for(Interrupt, timeout=30)
            started = await harness.wait_for(SpeechStarted)
            assert interrupt.target_turn == 7 and interrupt.turn == started.turn
            final = await harness.wait_for(Transcript, lambda m: m.final, timeout=30)
            assert "forward" in final.text.lower()
            assert len(harness.probe.messages(Interrupt)) == 1

    run(scenario())


def test_short_sounds_and_a_silent_twin_do_not_interrupt() -> None:
    async def scenario() -> None:
        async with Harness(recognizer()) as harness:
            voice = load("goforward.raw")[int(0.50 * 16000):int(0.80 * 16000)]  # "go": 0.3 s
            await harness.send(twin_speech(30.0, turn=3), source="lipsync")
            await hear(harness, np.concatenate([silence(0.5), voice, silence(1.0)]))
            await harness.send(SpeechCut(spoken_text="The route", sentence_index=0,
                                         at_seconds=0.5, turn=3), source="lipsync")
            await hear(harness, np.concatenate([load("goforward.raw"), silence(1.0)]))
            await harness.wait_for(Transcript, lambda m: m.final, timeout=30)
            assert harness.probe.messages(Interrupt) == []

    run(scenario())


def test_the_mission_vocabulary_is_its_names_in_title_case() -> None:
    from actors.speech import mission_vocabulary
    from twin.config import load_mission

    mission = load_mission(Path(__file__).resolve().parents[2] / "missions"
                           / "route_clearance.yaml")
    words = mission_vocabulary(mission)
    assert {"Bulldog 0A", "Mercer", "Cedar", "Mule 6", "Halden"} <= set(words)
    assert "MSR" in words  # an acronym stays as written
    assert len(words) == len(set(words))
    assert not any(word.isupper() and len(word) > 3 for word in words)


def test_backchannels_and_requests_are_told_apart_by_their_words() -> None:
    from actors.speech import halts, is_backchannel, requested_words

    for said in ["Okay.", "Okay, okay.", "Mm-hmm.", "Copy that.", "Roger.", "All right, thanks."]:
        assert is_backchannel(said), said
        assert not requested_words(said), said
    for said in ["Wait, stop.", "Yes, and the grid?", "copyright", "Go forward ten meters.", ""]:
        assert not is_backchannel(said), said
    assert not is_backchannel("Okay.", [])  # none configured
    # while they speak: a halt at once; another word once one follows it (a cut word misleads)
    assert halts("Wait") and halts("Okay, stop") and not requested_words("Okay, stop")
    assert not requested_words("Okay, go") and not requested_words("Cop")
    assert requested_words("What was the") == {"what", "was"}
    assert requested_words("Go forward ten") == {"forward"}  # "go" as in "go on"
    assert halts("Stop.") and halts("Okay, wait") and not halts("Okay, go on")


# ---------------------------------------------------------------------------- end of turn


def test_a_finished_command_ends_its_turn_sooner_than_a_fixed_pause() -> None:
    """Smart end of turn on a real recording in real time: the turn model judges "go forward ten
    meters" finished, its words are decoded at the first pause, and the turn ends well before
    the 500 ms of the fixed pause, its final transcript already there; the metric says why."""
    pcm = (np.concatenate([silence(0.5), load("goforward.raw"), silence(1.5)])
           * 32767).astype("<i2")

    async def waited(mode: str) -> tuple[float, Metric | None, str, list[Transcript]]:
        async with Harness(recognizer(end_of_turn=mode)) as harness:
            began = time.time()
            for n, i in enumerate(range(0, len(pcm), 1600)):
                await asyncio.sleep(max(0.0, began + (n + 1) * 0.1 - time.time()))
                await harness.send(AudioFrame(pcm=pcm[i:i + 1600].tobytes(), start=n * 0.1))
            ended = await harness.wait_for(SpeechEnded, timeout=10)
            final = await harness.wait_for(Transcript, lambda m: m.final, timeout=10)
            why = [m for m in harness.probe.messages(Metric) if m.name == "end_of_turn_wait_ms"]
            ahead = [m for m in harness.probe.messages(Transcript) if m.speculative]
            return ended.t - ended.voice_end, (why[0] if why else None), final.text, ahead

    async def scenario() -> None:
        smart, why, text, ahead = await waited("smart")
        fixed, none, _, _ = await waited("silence")
        assert "forward" in text.lower()
        # the words that decided the end went out first, as what the final would say
        assert ahead and ahead[-1].text == text and not ahead[-1].final
        assert why is not None and float(why.labels["finished"]) > 0.5
        assert why.value == SpeechSettings().complete_pause_ms  # judged finished
        assert "forward" in why.labels["words"].lower()
        assert none is None  # a fixed pause has nothing to explain
        assert fixed > 0.45 and smart < fixed - 0.1, (smart, fixed)

    run(scenario())


def test_the_turn_model_hears_a_finished_sentence_from_one_cut_short() -> None:
    """The real Smart Turn model on a real read sentence: finished at its end, not when cut at
    three fifths (mid-clause)."""
    from actors.turn import load_smart_turn

    model = load_smart_turn("smart-turn-v3.2")
    audio = load("sense_and_sensibility_01_austen_64kb-0920.wav")
    assert model(audio) > 0.5
    assert model(audio[: int(len(audio) * 0.6)]) < 0.5


def test_an_operator_who_goes_on_after_finished_sounding_pauses_is_waited_for() -> None:
    """A real command with a pause put after its first words ("go forward ... ten meters"),
    said three times: the first two are cut at the pause (it sounds and reads finished) and go
    on as one turn, the recogniser learns that this operator goes on after such pauses, and
    the third is heard whole as one turn."""
    from twin.turn_set import TurnClip, voice_bounds, with_pause

    samples = (load("goforward.raw") * 32767).astype(np.int16)
    start, end = voice_bounds(samples)
    paused = with_pause(TurnClip("go forward", samples, "", end), 0.5, start)
    said = np.concatenate([paused.samples, np.zeros(3 * 16000, np.int16)]).astype("<i2")
    pcm = np.concatenate([said] * 3)

    async def scenario() -> None:
        async with Harness(recognizer()) as harness:
            began = time.time()
            for n, i in enumerate(range(0, len(pcm), 1600)):
                await asyncio.sleep(max(0.0, began + (n + 1) * 0.1 - time.time()))
                await harness.send(AudioFrame(pcm=pcm[i:i + 1600].tobytes(), start=n * 0.1))
            await asyncio.sleep(1.0)
            seconds = len(said) / 16000
            turns = [sum(1 for m in harness.probe.messages(SpeechStarted)
                         if k * seconds <= m.at < (k + 1) * seconds) for k in range(3)]
            assert turns[0] == 2 and turns[2] == 1, turns
            # cut at the pause, the first one went on as one turn: the second holds both parts,
            # and the reply to the first was withdrawn
            started = harness.probe.messages(SpeechStarted)
            finals = harness.probe.messages(Transcript)
            assert started[1].continues == started[0].turn
            whole = next(m for m in finals if m.final and m.turn == started[1].turn)
            assert "forward" in whole.text.lower() and "meter" in whole.text.lower(), whole.text
            assert whole.start == pytest.approx(started[0].at, abs=0.05)
            withdrawn = harness.probe.messages(Interrupt)
            assert [m.target_turn for m in withdrawn][:1] == [started[0].turn]
            assert withdrawn[0].reason == "operator went on"
            actor = harness.actor
            assert isinstance(actor, SpeechRecognizer)
            assert actor.end_of_turn.complete_wait() > 0.5 * 1000

    run(scenario())


def test_a_phrase_said_again_at_once_is_decoded_again() -> None:
    """Whisper doubles short commands ("10 of clubs 10 of clubs"): such a result is taken for a
    loop and decoded again in the full window; one word said again means the same ("Okay.
    Okay.") and digits said twice are how numbers are read: those stand."""
    from actors.asr import _repetitive

    for looped in ["10 of clubs 10 of clubs", "Go forward, go forward ten meters."]:
        assert _repetitive(looped), looped
    for heard in ["Five five.", "4 8 0 6 6 0 0", "Go forward ten meters.", "Okay. Okay.",
                  "Yeah. Yeah. Yeah.", "Eight of spades, four of clubs, seven of hearts."]:
        assert not _repetitive(heard), heard


def test_a_continued_turn_keeps_its_whole_decode_unless_that_lost_the_first_part() -> None:
    """The words heard before the pause joined to those of the turn's own audio, and when the
    whole decode is kept instead."""
    from actors.asr import Recognition, RecognizedWord
    from actors.speech import _holds, _joined

    before = Recognition("Casualty in BULLDOG 3.", [RecognizedWord("Casualty", 0.3, 0.8, 0.9),
                                                    RecognizedWord("in", 0.8, 0.9, 0.8),
                                                    RecognizedWord("BULLDOG", 0.9, 1.4, 0.5),
                                                    RecognizedWord("3.", 1.4, 1.6, 0.9)], 0.775)
    after = Recognition("Helicopter?", [RecognizedWord("Helicopter?", 0.3, 0.9, 0.7)], 0.7)
    whole = _joined(before, after, shift=2.0)  # its own audio began 2 s into the turn's
    assert whole.text == "Casualty in BULLDOG 3. Helicopter?"
    assert [(w.word, w.start) for w in whole.words][-2:] == [("3.", 1.4), ("Helicopter?", 2.3)]
    assert whole.confidence == pytest.approx((0.9 + 0.8 + 0.5 + 0.9 + 0.7) / 5)
    nothing = Recognition("")
    assert _joined(before, nothing, shift=2.0) == before  # a breath after the pause
    assert _joined(nothing, after, shift=2.0).words[0].start == 2.3  # a cough before it
    # decoded whole, the turn keeps its whole decode unless that lost the words before the pause
    assert _holds(Recognition("Casualty in BULLDOG three. Helicopter?"), before)
    assert not _holds(Recognition("Can we get a helicopter in or not?"), before)
    assert _holds(Recognition("Yeah, got it."), Recognition("Yeah. Yeah. Yeah."))
