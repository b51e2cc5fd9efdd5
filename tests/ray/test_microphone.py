"""A real PyAudio microphone on a real Ray: ALSA's file plugin plays a real recording as the
capture device (RESOURCES.md), and the operator's words reach the session log as transcripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from actors.audio import read_wav
from twin.log import LogReader
from twin.messages import SpeechEnded, Transcript
from twin.metrics import word_error_rate

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "speech"
CLIPS = json.loads((FIXTURES / "transcripts.json").read_text())["clips"]


def fake_microphone(tmp_path: Path) -> dict[str, str]:
    """An ALSA config whose default capture device reads a raw recording; its environment."""
    wav = read_wav(FIXTURES / "sense_and_sensibility_01_austen_64kb-0880.wav").samples[:, 0]
    goforward = np.frombuffer((FIXTURES / "goforward.raw").read_bytes(), "<i2")
    quiet = np.zeros(16000, np.int16)
    # the plugin repeats stale data past the end of the file: pad well past the mission's end
    samples = np.concatenate([quiet, goforward, quiet, quiet, (wav * 32767).astype("<i2"),
                              np.zeros(40 * 16000, np.int16)])
    raw = tmp_path / "operator.raw"
    raw.write_bytes(samples.astype("<i2").tobytes())
    conf = tmp_path / "asound.conf"
    conf.write_text(
        f'pcm.fakemic {{ type file  slave.pcm "null"  file "/dev/null"  infile "{raw}"  '
        'format "raw" }\n'
        'pcm.!default { type asym  playback.pcm "null"  capture.pcm "plug:fakemic" }\n')
    return {**os.environ, "ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{conf}"}


def test_microphone_speech_becomes_final_transcripts_in_the_log(tmp_path: Path) -> None:
    env = fake_microphone(tmp_path)
    config = yaml.safe_load((ROOT / "configs" / "test.yaml").read_text())
    config["session"]["log_dir"] = str(tmp_path)
    del config["actors"]["lipsync"]  # nothing to say: the twin does not talk yet
    config["actors"]["operator_audio"] = {
        "class": "actors.sources.MicrophoneSource", "on_failure": "end",
        "settings": {"device": "fakemic", "rate": 16000, "pace": True}}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [sys.executable, "-m", "twin.cli", "run", str(ROOT / "missions" / "route_clearance.yaml"),
         "--config", str(config_path), "--speed", "10"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "session ended (mission ended" in run.stdout, run.stdout[-3000:]
    log = next(tmp_path.glob("*.db"))
    with LogReader(log) as reader:
        finals = [m for m in reader.messages(types=["transcript"])
                  if isinstance(m, Transcript) and m.final]
        ended = [m for m in reader.messages(types=["speech_ended"])
                 if isinstance(m, SpeechEnded)]
        frames = reader.count(types=["audio_frame"])
        sources = {m.source for m in reader.messages(types=["audio_frame"], limit=5)}
    assert sources == {"operator_audio"} and frames > 50  # the microphone's frames are logged
    assert len(finals) == len(ended) == 2, [f.text for f in finals]
    assert word_error_rate(CLIPS["goforward.raw"]["text"], finals[0].text) <= 0.25
    reference = CLIPS["sense_and_sensibility_01_austen_64kb-0880.wav"]["text"]
    assert word_error_rate(reference, finals[1].text) <= 0.35
