"""``twin chat``: a terminal conversation with the twin's mind — type a question, see the
decision (intent, style, hedge, confidence, reasons, evidence) and the reply; no audio needed.

Lines starting with ``/`` are commands: ``/inject ID`` makes an inject happen (the twin reports
it), ``/injects`` lists them, ``/help``, ``/quit``. Runs the real Dialogue actor with the
configured model (``twin.conversation``).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any, TextIO

from twin.config import Mission
from twin.conversation import Exchange, Talk, UnknownEvent

HELP = """Type a question and press Enter. Commands:
  /inject ID   make the mission's inject ID happen now (the twin reports it)
  /injects     list the mission's injects
  /help        this help
  /quit        end (or Ctrl-D)"""


def show(exchange: Exchange, write: Callable[[str], None]) -> None:
    """The decision and the reply of one exchange, for a terminal."""
    d = exchange.decision
    hedge = ", hedged" if d.hedge else ""
    write(f"  decision: {d.intent}, {d.style}{hedge}, confidence {d.confidence:.2f}, "
          f"expression {d.expression}")
    for reason in d.reasons:
        write(f"    - {reason}")
    if d.evidence:
        write("  evidence: " + ", ".join(f"{e.id} ({e.score:.2f})" for e in d.evidence))
    for rejected in exchange.rejected:
        write(f"  held back: {rejected}")
    first = (f" ({exchange.first_sentence_ms:.0f} ms to the first sentence)"
             if exchange.first_sentence_ms is not None else "")
    write(f"twin{first}: {exchange.reply}")


async def chat(mission: Mission, settings: dict[str, Any], *, stdin: TextIO = sys.stdin,
               write: Callable[[str], None] = print) -> int:
    """Run the conversation until /quit or end of input; the number of questions asked."""
    write(f"twin chat: {mission.title}")
    write("loading the model and reading the mission (the first time takes a while) ...")
    asked = 0
    async with Talk(mission, settings) as talk:
        ready = talk.ready_s
        write(f"the twin is ready{f' ({ready:.1f} s)' if ready is not None else ''}. "
              "Type a question, /help for commands.")
        while True:
            line = await asyncio.to_thread(_read_line, stdin, "you> ")
            if line is None:
                break
            line = line.strip()
            if not line:
                continue
            if line in ("/quit", "/exit", "/q"):
                break
            if line == "/help":
                write(HELP)
            elif line == "/injects":
                for inject in mission.injects:
                    happened = " (happened)" if inject.id in talk.happened else ""
                    write(f"  {inject.id:24} {inject.priority:8} {inject.text[:60]}{happened}")
            elif line.startswith("/inject"):
                name = line.removeprefix("/inject").strip()
                if not name:
                    write("usage: /inject ID (see /injects)")
                    continue
                try:
                    reports = await talk.inject(name)
                except UnknownEvent as error:
                    write(str(error))
                    continue
                for report in reports:
                    write(f"[{report.decision.question[:70]}]")
                    show(report, write)
                if not reports:
                    write("(the twin did not report it)")
            elif line.startswith("/"):
                write(f"unknown command {line.split()[0]!r}; /help lists them")
            else:
                asked += 1
                show(await talk.ask(line), write)
    return asked


def _read_line(stdin: TextIO, prompt: str) -> str | None:
    if stdin.isatty():
        try:
            return input(prompt)
        except EOFError:
            return None
    line = stdin.readline()
    return line if line else None
