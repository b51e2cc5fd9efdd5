"""`twin run` as a user runs it, on Ray, with the avatar gateway: the printed operator link shows
the twin speaking (its real voice and viseme track, from piper through LipSync) and the trainer
link ends the mission."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from avatar.browser import wait_until
from twin.log import LogReader

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MISSION = ROOT / "missions" / "route_clearance.yaml"
LINK = re.compile(r"^twin: avatar (operator|trainer|viewer)\s+(http://\S+)$")


def test_twin_run_prints_the_links_and_the_operator_sees_the_twin_speak(
        tmp_path: Path, chromium_page: Any, chromium_browser: Any, artifacts: Path) -> None:
    config = yaml.safe_load((ROOT / "configs" / "test.yaml").read_text())
    config["session"]["log_dir"] = str(tmp_path / "sessions")
    for name in ("operator_audio", "speech", "behavior"):  # the twin talks; nobody answers
        config["actors"].pop(name, None)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [sys.executable, "-m", "twin.cli", "run", str(MISSION), "--config", str(config_path),
         "--timeout", "240"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    links: dict[str, str] = {}
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        while len(links) < 3 and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
            match = LINK.match(line.rstrip())
            if match:
                links[match.group(1)] = match.group(2)
        assert set(links) == {"operator", "trainer", "viewer"}, "\n".join(lines)
        assert all(url.startswith("http://127.0.0.1:") for url in links.values())

        page = chromium_page
        page.goto(links["operator"])
        wait_until(page, "window.__twinTest && window.__twinTest.state().connected", 20)
        assert page.locator("#role").inner_text().lower() == "operator"
        # The twin reports the first phase: its speech plays and its mouth follows the track
        record = wait_until(page, """(() => window.__twinTest.state().speeches
            .find((s) => s.source === "lipsync" && s.audibleAt))()""", 150)
        assert record["visemes"] and record["startAt"] is not None
        spoken = {v["viseme"] for v in record["visemes"]}
        assert len(spoken) >= 5  # a real sentence: many mouth shapes
        wait_until(page, f"""window.__twinTest.frames().filter((f) => f.turn === {record["turn"]}
            && f.index === {record["index"]} && f.gap > 6).length >= 3""", 30)
        frames = [f for f in page.evaluate("window.__twinTest.frames()")
                  if f["turn"] == record["turn"] and f["index"] == record["index"]]
        assert len({f["viseme"] for f in frames}) >= 3
        page.screenshot(path=str(artifacts / "avatar-twin-run.png"))
        assert "Stand-up" in page.locator("#phase").inner_text()

        trainer = chromium_browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        trainer.goto(links["trainer"])
        wait_until(trainer, "window.__twinTest && window.__twinTest.state().connected", 20)
        trainer.locator("#btn-end").click()
        trainer.locator("#btn-end").click()  # confirm
        wait_until(trainer, "window.__twinTest.state().acks.length > 0", 10)
        out, _ = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    lines.extend(out.splitlines())
    text = "\n".join(lines)
    assert process.returncode == 0, text[-3000:]
    assert "session ended (mission ended" in text
    log = next((tmp_path / "sessions").glob("*.db"))
    with LogReader(log) as reader:
        controls = list(reader.messages(types=["trainer_control"]))
        meta = reader.meta()
    assert [(c.source, getattr(c, "command", "")) for c in controls] == [("avatar", "end")]
    tokens = [url.split("#token=")[1] for url in links.values()]
    assert not any(token in str(meta) for token in tokens)  # the tokens are not in the log
