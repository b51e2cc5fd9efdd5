"""Hearing with the real models on real recordings: the whole actor path, and its failures."""

from __future__ import annotations

import asyncio
import json
import time
import wave
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actors.audio import read_wav
from actors.sources import WavSource
from actors.speech import SpeechRecognizer
from twin.bus import LocalBus
from twin.messages import ActorError, SpeechEnded, SpeechStarted, Transcript
from twin.metrics import word_errors
from twin.testing import Probe

pytestmark = pytest.mark.models

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "speech"
CLIPS = json.loads((FIXTURES / "transcripts.json").read_text())["clips"]
LIBRIVOX = sorted(name for name in CLIPS if name.endswith(".wav"))


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 300))


def write_session_audio(path: Path, names: list[str], gap_s: float = 1.5) -> Path:
    """The clips one after another with pauses, as one 16 kHz recording."""
    parts = [np.zeros(int(gap_s * 16000), np.int16)]
    for name in names:
        samples = read_wav(FIXTURES / name).samples[:, 0]
        parts += [(samples * 32767).astype("<i2"), np.zeros(int(gap_s * 16000), np.int16)]
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(np.concatenate(parts).astype("<i2").tobytes())
    return path


async def listen(path: Path, turns: int, **speech: Any) -> Probe:
    """Play ``path`` through a WavSource into a SpeechRecognizer until ``turns`` finals."""
    bus = LocalBus()
    probe = Probe(name="probe")
    source = WavSource({"path": str(path), "speed": 2.0}, name="operator_audio")
    recognizer = SpeechRecognizer(speech, name="speech")
    for actor in (probe, recognizer, source):
        actor.attach(bus)
    for actor in (probe, recognizer, source):
        await actor.start()
    try:
        for n in range(turns):
            await probe.wait_for(Transcript, lambda m, n=n: m.final and m.turn == n + 1,
                                 timeout=120)
    finally:
        for actor in (source, recognizer, probe):
            await actor.stop()
    return probe


def test_word_error_rate_of_the_actor_path_on_librivox_is_at_most_ten_percent(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        audio = write_session_audio(tmp_path / "librivox.wav", LIBRIVOX)
        probe = await listen(audio, len(LIBRIVOX))
        finals = [m for m in probe.messages(Transcript) if m.final]
        assert [m.turn for m in finals] == list(range(1, len(LIBRIVOX) + 1))
        total = sum((word_errors(CLIPS[name]["text"], final.text)
                     for name, final in zip(LIBRIVOX, finals, strict=True)),
                    start=word_errors("", ""))
        assert total.rate <= 0.10, [f.text for f in finals]
        # each turn: started, partials while speaking, ended, then the final with timed words
        for final in finals:
            started = [m for m in probe.messages(SpeechStarted) if m.turn == final.turn]
            ended = [m for m in probe.messages(SpeechEnded) if m.turn == final.turn]
            assert len(started) == len(ended) == 1
            assert final.start == started[0].at and final.end == ended[0].at
            assert final.words and 0 < final.confidence <= 1
            times = [(w.start, w.end) for w in final.words]
            assert all(a <= b for a, b in times)
            assert times[0][0] >= final.start - 0.35 and times[-1][1] <= final.end + 0.5
        long_turns = [f.turn for f in finals if f.end - f.start > 4]
        partial_turns = {m.turn for m in probe.messages(Transcript) if not m.final}
        assert set(long_turns) <= partial_turns  # partials arrived while they spoke

    run(scenario())


def test_a_missing_model_names_the_fetch_command(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_MODELS", str(tmp_path / "empty"))

    async def scenario() -> None:
        recognizer = SpeechRecognizer({"model": "whisper-base"}, name="speech")
        recognizer.attach(LocalBus())
        health = await recognizer.start()
        assert health["failed"] and "twin models fetch whisper-base" in health["failed"]
        folder = SpeechRecognizer({"model": str(tmp_path)}, name="speech")
        folder.attach(LocalBus())
        health = await folder.start()
        assert "not a CTranslate2 Whisper folder" in health["failed"]
        unknown = SpeechRecognizer({"model": "openai/whisper-large"}, name="speech")
        unknown.attach(LocalBus())
        health = await unknown.start()
        assert "allow_download" in health["failed"]

    run(scenario())


def test_bad_audio_files_fail_clearly_or_play_what_they_hold(tmp_path: Path) -> None:
    async def scenario() -> None:
        corrupt = tmp_path / "corrupt.wav"
        corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
        bus = LocalBus()
        probe = Probe(name="probe")
        probe.attach(bus)
        await probe.start()
        source = WavSource({"path": str(corrupt)}, name="operator_audio")
        source.attach(bus)
        health = await source.start()
        assert health["failed"] and "corrupt.wav" in health["failed"]
        error = await probe.wait_for(ActorError)
        assert not error.recoverable and "corrupt.wav" in error.error

        whole = (FIXTURES / "sense_and_sensibility_01_austen_64kb-0930.wav").read_bytes()
        truncated = tmp_path / "truncated.wav"
        truncated.write_bytes(whole[: int(len(whole) * 0.8)])
        probe_two = await listen(truncated, 1)
        final = next(m for m in probe_two.messages(Transcript) if m.final)
        assert "amiable" in final.text.lower()
        warning = next(m for m in probe_two.messages(ActorError))
        assert warning.recoverable and "truncated" in warning.error
        await probe.stop()

    run(scenario())


def test_the_missions_names_are_heard_with_its_vocabulary() -> None:
    # Mission lines spoken by the piper voice (synthetic speech: this checks the bias towards the
    # mission's names, not accuracy on real voices, which the LibriVox tests above bound).
    import re

    import soxr

    from actors.asr import WhisperRecognizer
    from actors.speech import mission_vocabulary
    from actors.voices import load_voice
    from twin.config import load_mission

    mission = load_mission(Path(__file__).resolve().parents[2] / "missions"
                           / "route_clearance.yaml")
    lines = ["We've lost BULLDOG 2 on the net. What should I do and why?",
             "Casualty in BULLDOG 3. Can we get a helicopter in or not?",
             "What goes in the route status for MULE 6, and is the convoy still inside the "
             "window?",
             "Is MERCER still the fuel point after the hand-over at CEDAR?",
             "BULLDOG 0A, SPARROW reports the culvert at ALDER is clear."]
    voice = load_voice("piper-joe-medium")
    plain = WhisperRecognizer(beam_size=2)
    biased = WhisperRecognizer(beam_size=2, vocabulary=", ".join(mission_vocabulary(mission)))
    heard = {"plain": 0, "vocabulary": 0}
    names = 0
    for _ in range(2):
        for line in lines:
            speech = voice.synthesize(line)
            samples = np.frombuffer(speech.pcm, np.int16).astype(np.float32) / 32768
            audio = soxr.resample(samples, speech.sample_rate, 16000).astype(np.float32)
            audio = np.concatenate([np.zeros(4000, np.float32), audio,
                                    np.zeros(6400, np.float32)])
            wanted = re.findall(r"[A-Z]{4,}", line)
            names += len(wanted)
            for key, recognizer in (("plain", plain), ("vocabulary", biased)):
                text = recognizer.recognize(audio).text.lower()
                heard[key] += sum(name.lower() in text for name in wanted)
    assert heard["vocabulary"] >= 0.85 * names, heard
    assert heard["vocabulary"] >= heard["plain"], heard


@pytest.mark.parametrize(("said", "interrupts"), [
    ("Okay.", False), ("Copy that.", False), ("Yeah, got it.", False),
    ("Wait, stop.", True), ("What was the grid again?", True),
])
def test_a_backchannel_lets_the_twin_go_on_and_a_request_interrupts(said: str,
                                                                     interrupts: bool) -> None:
    """Spoken by the piper voice while the twin speaks, fed at a microphone's pace: an
    acknowledgement neither interrupts nor asks for an answer; anything else interrupts."""
    from actors.asr import WhisperRecognizer
    from actors.audio import Resampler
    from actors.voices import load_voice
    from twin.messages import AudioFrame, Interrupt, Speech
    from twin.testing import Harness

    voice = load_voice("piper-joe-medium", fallback=False)
    # piper says a line a little differently each time, and tiny.en now and then mishears one
    # ("Copy that." as "Happy that!", about one in twenty): take a rendering that plain
    # faster-whisper hears right, so that what is tested is the barge-in, not the voice
    plain = WhisperRecognizer(beam_size=2)
    for _ in range(5):
        synthesis = voice.synthesize(said)
        samples = np.frombuffer(synthesis.pcm, "<i2").astype(np.float32) / 32768
        operator = Resampler(synthesis.sample_rate)(samples, last=True)
        heard = plain.recognize(np.concatenate([np.zeros(4800), operator / 32768,
                                                np.zeros(6400)]).astype(np.float32)).text
        if word_errors(said, heard).errors == 0:
            break
    # then silence well past the longest end-of-turn wait (max_pause_ms: "Wait," trails off;
    # on a loaded machine its judgement comes late, and a microphone never stops sending)
    pcm = np.concatenate([np.zeros(8000, np.int16), operator, np.zeros(80000, np.int16)])

    async def scenario() -> None:
        recogniser = SpeechRecognizer({"barge_in_min_ms": 300}, name="speech")
        async with Harness(recogniser) as harness:
            await harness.send(Speech(text="The route is clear to checkpoint Birch.", index=0,
                                      final=True, pcm=bytes(30 * 22050 * 2), sample_rate=22050,
                                      turn=7), source="lipsync")
            for n, i in enumerate(range(0, len(pcm), 1600)):
                await asyncio.sleep(0.1)
                await harness.send(AudioFrame(pcm=pcm[i:i + 1600].tobytes(), start=n * 0.1))
            final = await harness.wait_for(Transcript, lambda m: m.final, timeout=30)
            interrupt = harness.probe.messages(Interrupt)
            started = harness.probe.messages(SpeechStarted)
            print(said, "->", final.text, final.backchannel, "interrupt after the voice began:",
                  f"{interrupt[0].t - started[0].t:.2f} s" if interrupt and started else "-")
            assert bool(harness.probe.messages(Interrupt)) is interrupts
            assert final.backchannel is not interrupts

    run(scenario())


def test_short_held_out_commands_are_heard_once_and_as_well_as_plain_whisper(
        tmp_path: Path) -> None:
    """Debian's pocketsphinx-testdata card names (1-4 s, nothing was tuned on them) through the
    actor path: no phrase comes out doubled ("10 of clubs 10 of clubs" did, every run), and the
    word error rate is at most plain faster-whisper's on the same clips (plus one word in 20)."""
    from faster_whisper import WhisperModel

    from actors.asr import resolve_model
    from twin.bench import held_out_speech_clips

    clips = held_out_speech_clips()
    assert clips, "apt-get install pocketsphinx-testdata (make test installs it)"
    gap = np.zeros(int(2.5 * 16000), np.int16)  # past the longest end-of-turn wait
    path = tmp_path / "cards.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(np.concatenate([gap, *(part for clip in clips
                                               for part in (clip.samples, gap))]).tobytes())
    reference = " ".join(clip.text for clip in clips)
    plain = WhisperModel(resolve_model("whisper-tiny.en"), device="cpu", compute_type="int8",
                         cpu_threads=2, local_files_only=True)
    plain_text = " ".join(segment.text for clip in clips for segment in plain.transcribe(
        clip.samples.astype(np.float32) / 32768, beam_size=1, language="en")[0])

    async def scenario() -> None:
        bus = LocalBus()
        probe = Probe(name="probe")
        source = WavSource({"path": str(path), "speed": 2.0}, name="operator_audio")
        recognizer = SpeechRecognizer({}, name="speech")
        for actor in (probe, recognizer, source):
            actor.attach(bus)
        for actor in (probe, recognizer, source):
            await actor.start()
        try:
            await asyncio.sleep(len(clips) * 2.5 * 2 / 2)  # the clips and gaps, at speed 2
            await probe.wait_for(Transcript, lambda m: m.final and m.turn == len(
                probe.messages(SpeechStarted)), timeout=60)
        finally:
            for actor in (source, recognizer, probe):
                await actor.stop()
        went_on = {m.continues for m in probe.messages(SpeechStarted)}  # heard again, whole
        finals = [m.text for m in probe.messages(Transcript)
                  if m.final and m.turn not in went_on]
        for text in finals:
            words = [w.strip(".,!?").lower() for w in text.split()]
            doubled = [words[i:i + n] for n in (2, 3) for i in range(len(words) - 2 * n + 1)
                       if words[i:i + n] == words[i + n:i + 2 * n]]
            assert not doubled, text
        heard = word_errors(reference, " ".join(finals)).rate
        assert heard <= word_errors(reference, plain_text).rate + 0.05, (finals, plain_text)

    run(scenario())


def test_a_grid_and_a_callsign_read_out_come_with_the_missions_forms() -> None:
    """The demo's lines spoken by the piper voice, heard by a recogniser that knows the mission:
    the final transcript keeps the words as heard and names the grid and the callsigns as the
    notes write them (whisper wrote "49307102", "bull vog two" and "Bulldog 3")."""
    from actors.audio import Resampler
    from actors.voices import load_voice
    from twin.actor import SessionInfo
    from twin.config import load_mission
    from twin.entities import with_entities
    from twin.messages import AudioFrame
    from twin.testing import Harness

    mission = load_mission(FIXTURES.parents[2] / "missions" / "route_clearance.yaml")
    voice = load_voice("piper-joe-medium", fallback=False)
    said = ["Marker at four nine three zero seven one zero two. Give me the drill, short.",
            "We've lost BULLDOG 2 on the net. What should I do, and why?",
            "Casualty in BULLDOG 3. Can we get a helicopter in or not?"]
    parts = [np.zeros(8000, np.int16)]
    for line in said:
        synthesis = voice.synthesize(line)
        samples = np.frombuffer(synthesis.pcm, "<i2").astype(np.float32) / 32768
        parts += [Resampler(synthesis.sample_rate)(samples, last=True),
                  np.zeros(48000, np.int16)]  # past the longest end-of-turn wait
    pcm = np.concatenate(parts)

    async def scenario() -> None:
        recogniser = SpeechRecognizer({}, name="speech", session=SessionInfo(mission=mission))
        async with Harness(recogniser) as harness:
            for n, i in enumerate(range(0, len(pcm), 1600)):
                await harness.send(AudioFrame(pcm=pcm[i:i + 1600].tobytes(), start=n * 0.1))
                await asyncio.sleep(0.05)
            # all is sent, the last line's turn begun: its final is the last one
            last = max(m.turn for m in harness.probe.messages(SpeechStarted))
            await harness.wait_for(Transcript, lambda m: m.final and m.turn == last, timeout=60)
        # a turn the operator went on with is heard again whole in the next one: take that
        continued = {m.continues for m in harness.probe.messages(SpeechStarted)}
        finals = [m for m in harness.probe.messages(Transcript)
                  if m.final and m.turn not in continued]
        grids = [e.text for m in finals for e in m.entities if e.kind == "grid"]
        callsigns = [e.text for m in finals for e in m.entities if e.kind == "callsign"]
        assert grids == ["33T VM 4930 7102"], [m.text for m in finals]
        # whisper tiny.en hears the name as "Bulldog", "bull vog" or, now and then, "both out"
        assert callsigns and set(callsigns) <= {"BULLDOG 2", "BULLDOG 3"}, \
            [m.text for m in finals]
        for final in finals:
            for entity in final.entities:
                assert final.text[entity.start:entity.end] == entity.heard
                assert 0 < entity.confidence <= 1
                # a plain number may be one the mission does not hold (a misheard digit)
                assert entity.known or entity.kind == "number"
        assert "4930 7102" in with_entities(finals[0].text, finals[0].entities)

    run(scenario())


def test_a_turn_the_operator_went_on_with_keeps_what_came_before_the_pause() -> None:
    """An espeak-ng line with a pause between its statement and its question ("Casualty in
    BULLDOG 3. <pause> Can we get a helicopter in or not?"), fed as a microphone sends it: the
    turn ends at the pause, the operator goes on, and the turn that goes on with it holds both
    parts in order (Whisper given both at once gave the question alone)."""
    from twin.messages import AudioFrame
    from twin.testing import Harness

    clip = FIXTURES.parent / "radio" / "route_clearance" / "gb-m3" / "04.wav"
    samples = (read_wav(clip).samples[:, 0] * 32767).astype("<i2")
    pcm = np.concatenate([np.zeros(8000, np.int16), samples, np.zeros(48000, np.int16)])

    async def scenario() -> None:
        async with Harness(SpeechRecognizer({}, name="speech")) as harness:
            began = time.time()
            for n, i in enumerate(range(0, len(pcm), 1600)):
                await asyncio.sleep(max(0.0, began + (n + 1) * 0.1 - time.time()))
                await harness.send(AudioFrame(pcm=pcm[i:i + 1600].tobytes(), start=n * 0.1))
            last = max(m.turn for m in harness.probe.messages(SpeechStarted))
            await harness.wait_for(Transcript, lambda m: m.final and m.turn == last, timeout=30)
        started = harness.probe.messages(SpeechStarted)
        finals = {m.turn: m for m in harness.probe.messages(Transcript) if m.final}
        assert len(started) == 2 and started[1].continues == started[0].turn, finals
        first, whole = finals[started[0].turn], finals[started[1].turn]
        assert first.text and "helicopter" not in first.text.lower(), first.text
        assert whole.text.startswith(first.text) and "helicopter" in whole.text.lower(), \
            whole.text
        assert [w.start for w in whole.words] == sorted(w.start for w in whole.words)

    run(scenario())


def test_the_missions_words_choose_among_the_hypotheses_and_cost_no_accuracy() -> None:
    # The radio set's lines of two missions, one of them never used to choose the weights
    # (flood_relief, held out): the n-best re-ranked by the mission's words makes no more word
    # errors than the model's own best of the same beam, and changes some decodes.
    from actors.asr import WhisperRecognizer
    from actors.audio import Resampler
    from actors.lexicon import Lexicon
    from twin.eval_asr import load_refs

    radio = Path(__file__).resolve().parents[1] / "fixtures" / "radio"
    sets = [s for s in load_refs(radio / "refs.yaml", radio)
            if s.name.split()[0] in ("station_depress", "flood_relief")]
    assert len(sets) == 4 and any(s.held_out for s in sets)
    recognizer = WhisperRecognizer(beam_size=2, hypotheses=5)
    errors = {"model": 0, "mission": 0}
    changed = 0
    for clip_set in sets:
        lexicon = Lexicon.from_mission(clip_set.mission)
        for clip in clip_set.clips:
            wav = read_wav(clip.path)
            pcm = Resampler(wav.sample_rate, wav.channels)(wav.samples, last=True)
            samples = np.asarray(pcm, np.float32) / 32768
            heard = {}
            for key, words in (("model", None), ("mission", lexicon)):
                recognizer.lexicon = words
                heard[key] = recognizer.recognize(samples).text
                errors[key] += word_errors(clip.text, heard[key]).errors
            changed += heard["model"] != heard["mission"]
    assert errors["mission"] <= errors["model"], errors
    assert changed >= 2, changed
