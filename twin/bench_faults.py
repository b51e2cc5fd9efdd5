"""``twin bench faults``: SIGKILL each actor of a live session in turn and time its recovery.

The session is the configured one on Ray (all its actors and models), with a wav source for the
operator: one real recorded command, said again every ``gap_s`` (``tests/fixtures``' "go forward
ten meters" unless another clip is given). After the twin has answered a command, the next
actor on the list is killed with SIGKILL (its worker process, found from its health), and the
figures for it are:

- ``restarted_s``: kill -> the actor answers its health as started again (Ray started a new
  process and the supervisor ran ``start(recovering=True)``: caught up from the log, models
  loaded). A model reload is named by the actor (its ``models`` in the row);
- ``answered``: whether the operator's next command after the kill was answered (a sentence of
  the twin for its turn), and ``next_answer_s``: from the end of that command's voice to the
  first sentence; ``baseline_answer_s`` is the median of the same before any kill.

The recorder is killed last (the figures are read from the log it writes). Run
``twin bench faults [--config FILE] [--actors a,b,...]``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import time
import wave
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twin.config import TwinConfig, load_config, load_mission

__all__ = ["Recovery", "format_faults", "kill_each", "run_faults_bench"]

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ROOT / "tests" / "fixtures" / "speech" / "goforward.raw"  # 16 kHz mono PCM
KILLED_IN_ORDER = ("speech", "dialogue", "lipsync", "emotion", "avatar", "mission",
                   "operator_audio", "recorder")


@dataclass
class Recovery:
    """One actor killed, and how the session came back."""

    actor: str
    killed_turn: int  # the operator turn answered just before the kill
    restarted_s: float | None
    answered: bool
    next_answer_s: float | None
    models: str = ""


def operator_audio(path: Path, times: int, gap_s: float, clip: Path = COMMAND) -> Path:
    """The same real spoken command ``times`` times, ``gap_s`` of silence after each."""
    command = np.frombuffer(clip.read_bytes(), "<i2")
    silence = np.zeros(int(gap_s * 16000), np.int16)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(np.concatenate([command, silence] * times).astype("<i2").tobytes())
    return path


def _logged(path: Path) -> list[Any]:
    from twin.log import LogReader

    if not path.exists():
        return []
    with LogReader(path) as reader:
        return list(reader.messages())


def _answers(messages: list[Any]) -> dict[int, float]:
    """Operator turn -> wall time of the twin's first sentence for it."""
    from twin.messages import TwinUtterance

    first: dict[int, float] = {}
    for m in messages:
        if isinstance(m, TwinUtterance) and m.text and m.turn is not None:
            first.setdefault(m.turn, m.t)
    return first


def _voice_ends(messages: list[Any]) -> dict[int, float]:
    from twin.messages import SpeechEnded

    return {m.turn: m.anchor for m in messages
            if isinstance(m, SpeechEnded) and not m.lost and m.turn is not None}


def kill_each(config: TwinConfig, actors: tuple[str, ...], log_dir: Path, *,
              gap_s: float = 14.0, timeout_s: float = 600.0,
              progress: Callable[[str], None] = lambda text: None
              ) -> tuple[list[Recovery], list[float], Path, list[str]]:
    """Run a session of ``config`` with a wav operator, killing ``actors`` one by one after
    answers; (the recoveries, the answer times before any kill, the log, the notices)."""
    from twin.runtime import Session

    mission = load_mission(ROOT / "missions" / "route_clearance.yaml")
    missing = [name for name in actors if name not in config.actors]
    if missing:
        raise ValueError(f"not in the config: {', '.join(missing)} "
                         f"(actors: {', '.join(config.actors)})")
    # a command for the baseline, one after each kill, and as many spare (a kill may cost a
    # turn: a command heard as two turns, a turn closed as lost); the session ends after the
    # last kill's answer, so the spare commands cost nothing
    audio = operator_audio(log_dir / "operator.wav", times=2 * len(actors) + 3, gap_s=gap_s)
    spec = config.actors.get("operator_audio")
    source = {"class": "actors.sources.WavSource", "settings": {"path": str(audio)},
              "max_restarts": 2, "on_failure": "restart"}
    if spec is not None:
        source["num_cpus"] = spec.num_cpus
    actors_spec = dict(config.actors)
    from twin.config import ActorSpec

    actors_spec["operator_audio"] = ActorSpec.model_validate(source)
    config = config.model_copy(update={
        "actors": actors_spec,
        "session": config.session.model_copy(update={"log_dir": log_dir})})
    session = Session(config, mission, speed=0.5)  # the mission outlasts the kills
    notices: list[str] = []
    session.on_notice = notices.append
    recoveries: list[Recovery] = []

    async def scenario() -> None:
        task = asyncio.create_task(session.run(timeout=timeout_s))
        queue = list(actors)
        waiting: tuple[str, int, float] | None = None  # (actor, turn answered, kill time)
        while not task.done():
            await asyncio.sleep(0.1)
            messages = _logged(session.log_path)
            answers = _answers(messages)
            operator_turns = [t for t in answers if t < 1_000_000]
            if waiting is not None:
                name, turn, killed = waiting
                later = [t for t in operator_turns if t > turn]
                if later or time.time() - killed > gap_s * 3:
                    ends = _voice_ends(messages)
                    recoveries[-1].answered = bool(later)
                    if later and later[0] in ends:
                        recoveries[-1].next_answer_s = round(answers[later[0]] - ends[later[0]],
                                                             2)
                    progress(f"{name}: restarted in {recoveries[-1].restarted_s} s; next "
                             f"command {'answered' if later else 'NOT answered'}")
                    waiting = None
                continue
            if not queue:
                if len(operator_turns) >= len(actors) + 2:
                    session.stop("every actor was killed once")
                continue
            if len(operator_turns) < 2 + len(recoveries):
                continue  # two answers before the first kill: the baseline
            name = queue.pop(0)
            turn = max(operator_turns)
            watch = session.watches[name]
            health = await watch.placed.call("health")
            os.kill(int(str(health["incarnation"]).split("-")[0]), signal.SIGKILL)
            killed = time.time()
            recoveries.append(Recovery(name, turn, None, False, None,
                                       ", ".join(watch.plan.cls.required_models(
                                           watch.plan.settings))))
            waiting = (name, turn, killed)
            progress(f"killed {name} after turn {turn}")
            restarted = await _restarted(watch, str(health["incarnation"]), killed, 120.0)
            recoveries[-1].restarted_s = restarted
        await task

    asyncio.run(scenario())
    messages = _logged(session.log_path)
    answers, ends = _answers(messages), _voice_ends(messages)
    first_kill = min((r.killed_turn for r in recoveries), default=0)
    baseline = [answers[t] - ends[t] for t in sorted(answers) if t <= first_kill and t in ends]
    return recoveries, baseline, session.log_path, notices


async def _restarted(watch: Any, before: str, killed: float, limit_s: float) -> float | None:
    """Seconds from the kill until the actor is a new, started process."""
    while time.time() - killed < limit_s:
        try:
            health = await asyncio.wait_for(watch.placed.call("health"), 2.0)
        except Exception:  # dead, or being restarted by Ray
            health = None
        if health and health.get("incarnation") != before and health.get("started"):
            return round(time.time() - killed, 2)
        await asyncio.sleep(0.1)
    return None


def run_faults_bench(config_path: Path | None = None, actors: tuple[str, ...] | None = None,
                     progress: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """The recovery table of ``twin bench faults`` as a dict."""
    import tempfile

    config = load_config(config_path or ROOT / "configs" / "default.yaml")
    chosen = actors or tuple(name for name in KILLED_IN_ORDER if name in config.actors
                             and config.actors[name].enabled)
    with tempfile.TemporaryDirectory(prefix="twin-faults-") as folder:
        recoveries, baseline, _, notices = kill_each(config, chosen, Path(folder),
                                                     progress=progress)
    return {
        "baseline_answer_s": round(statistics.median(baseline), 2) if baseline else None,
        "recoveries": [asdict(r) for r in recoveries],
        "notices": notices,
    }


def format_faults(figures: dict[str, Any]) -> str:
    lines = [f"{'actor':16} {'restarted (s)':>14} {'next answered':>14} {'answer (s)':>11}"
             "  models reloaded"]
    for row in figures["recoveries"]:
        restarted = "-" if row["restarted_s"] is None else f"{row['restarted_s']:.2f}"
        answer = "-" if row["next_answer_s"] is None else f"{row['next_answer_s']:.2f}"
        lines.append(f"{row['actor']:16} {restarted:>14} {'yes' if row['answered'] else 'NO':>14}"
                     f" {answer:>11}  {row['models'] or '-'}")
    lines.append(f"answer before any kill (end of the command's voice to the first sentence): "
                 f"median {figures['baseline_answer_s']} s")
    return "\n".join(lines)
