"""The wav source paces its frames as a microphone delivers them: each once its last sample is
due, so that every latency measured from a file is as honest as from a microphone."""

from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from actors.sources import WavSource
from twin.messages import AudioFrame
from twin.testing import Harness

pytestmark = pytest.mark.unit


def test_a_frame_goes_out_when_its_last_sample_is_due(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes((np.sin(np.arange(8000) / 5) * 8000).astype("<i2").tobytes())
    source = WavSource({"path": str(path), "lead_in_s": 0, "tail_s": 0}, name="operator_audio")

    async def scenario() -> list[AudioFrame]:
        async with Harness(source) as harness:
            await harness.wait_for(AudioFrame, lambda m: m.start >= 0.4, timeout=5)
            return harness.probe.messages(AudioFrame)

    before = time.time()
    frames = asyncio.run(scenario())
    assert [f.start for f in frames] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert frames[0].t - before >= 0.1  # not at its first sample
    for frame in frames:  # each 100 ms after the one before: the pace of the voice
        assert frame.t - frames[0].t == pytest.approx(frame.start, abs=0.05)
