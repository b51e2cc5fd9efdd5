"""The OpenAI-compatible backend against a real local server: ``python -m llama_cpp.server`` on
the registry's Qwen2.5 Coder 0.5B GGUF, the twin's Dialogue talking to it with ``ChatOpenAI`` —
what a user pointing twin at vLLM or a bigger model elsewhere relies on."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.chat import gguf_path
from twin.config import load_mission
from twin.conversation import Talk

pytestmark = pytest.mark.models

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    model = gguf_path("qwen2.5-coder-0.5b-instruct")
    log = tmp_path_factory.mktemp("server") / "server.log"  # llama.cpp talks a lot: not a pipe
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "8192", "--n_threads", "2", "--model_alias", "qwen"],
        stdout=subprocess.DEVNULL, stderr=log.open("w"), text=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError as error:
                if process.poll() is not None:
                    raise RuntimeError(f"llama_cpp.server exited: {log.read_text()[-2000:]}"
                                       ) from error
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.timeout(900)  # the server's model reads the mission first (about 40 s)
def test_the_twin_answers_through_an_openai_compatible_server(server: str) -> None:
    mission = load_mission(ROOT / "missions" / "route_clearance.yaml")
    settings = {"chat": {"backend": "openai", "base_url": server, "model": "qwen",
                         "timeout_s": 120}}

    async def scenario() -> None:
        async with Talk(mission, settings) as talk:
            known = await talk.ask("What frequency is the troop net on?")
            print(known.decision.intent, known.reply)
            assert "44.175" in known.reply, known.reply
            # what the small model rambles on with is held back by the checker, not spoken
            assert all("44.2" not in sentence for sentence in known.sentences), known.sentences

    asyncio.run(asyncio.wait_for(scenario(), 600))
