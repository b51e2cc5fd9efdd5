"""The after-action report: one self-contained HTML page a reviewer reads in any browser.

In: a :class:`twin.review.session.SessionReview`. Out: HTML text with everything inline (CSS,
the matplotlib figures as SVG; no script, no link to fetch): the session and what the log could
not give, key moments, the mission timeline with its events, objectives, the operator's affect
with each modality's part and the emotion shifts with the words around them, every turn with the
twin's decision (intent, confidence, evidence, reasons) and reply, and per-turn latency by stage.

Tables carry ids (``events``, ``objectives``, ``turns``, ``shifts``, ``latency``, ``errors``)
and each turn row its ``data-turn``, so tools and tests can read the page back.
"""

from __future__ import annotations

import datetime
import html
from collections.abc import Iterable, Sequence

from twin.review import plots
from twin.review.session import STAGE_NAMES, STAGES, SessionReview, TurnRow, clock

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1180px; padding: 1em 2em;
       color: #222; }
h1 { font-size: 1.5em; margin-bottom: .2em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; width: 100%; margin: .5em 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 6px; vertical-align: top; text-align: left; }
th { background: #f3f3f3; } tr.report td { background: #fafafa; color: #555; }
.note { background: #fff4d6; border-left: 4px solid #e0a800; padding: .4em .8em; margin: .3em 0; }
.empty { color: #777; font-style: italic; }
.flash { color: #b00; font-weight: bold; } .priority { color: #b60; }
.met { color: #1a7f37; font-weight: bold; } .unmet { color: #b00; }
.small { font-size: 12px; color: #555; } ul.moments li { margin: .15em 0; }
figure { margin: .5em 0; } figure svg { width: 100%; height: auto; }
dl { display: grid; grid-template-columns: max-content auto; gap: .1em 1em; }
dt { font-weight: bold; }
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _table(table_id: str, header: Sequence[str], rows: Iterable[str], empty: str) -> str:
    body = "".join(rows)
    if not body:
        return f'<p class="empty" id="{table_id}-empty">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _figure(svg: str | None, caption: str, empty: str) -> str:
    if svg is None:
        return f'<p class="empty">{_e(empty)}</p>'
    return f"<figure>{svg}<figcaption class=small>{_e(caption)}</figcaption></figure>"


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _header(review: SessionReview) -> str:
    created = (datetime.datetime.fromtimestamp(review.created, datetime.UTC)
               .strftime("%Y-%m-%d %H:%M:%S UTC") if review.created else "unknown")
    counts = ", ".join(f"{kind} {count}" for kind, count in sorted(review.counts.items()))
    facts = [
        ("session", review.session), ("mission", f"{review.title} ({review.mission})"),
        ("mode", review.mode), ("speed", _num(review.speed, 1) or "unknown"),
        ("recorded", created), ("length", f"{clock(review.duration)} from the mission's start"),
        ("ended", review.end_reason if review.ended else "no: the log ends before the mission"),
        ("messages", f"{review.messages} ({counts})" if counts else str(review.messages)),
        ("log", review.path),
    ]
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in review.notes)
    return (f"<h1>After-action report: {_e(review.title)}</h1><dl id=session>{items}</dl>"
            f"{notes}")


def _moments(review: SessionReview) -> str:
    items = "".join(f"<li>{_e(m)}</li>" for m in review.moments)
    return f'<h2>Key moments</h2><ul class="moments" id="moments">{items}</ul>'


def _timeline(review: SessionReview) -> str:
    rows = []
    for e in review.events:
        style = f' class="{_e(e.priority)}"' if e.priority in ("flash", "priority") else ""
        rows.append(
            f'<tr data-kind="{_e(e.kind)}" data-name="{_e(e.name)}"><td>{clock(e.t)}</td>'
            f"<td>{_e(e.mission_time)}</td><td>{_e(e.kind)}</td><td>{_e(e.name)}</td>"
            f"<td{style}>{_e(e.priority)}</td><td>{_e(e.text)}</td><td>{_e(e.reason)}</td></tr>")
    phases = "".join(
        f"<tr><td>{_e(p.id)}</td><td>{_e(p.title)}</td><td>{clock(p.start)}</td>"
        f"<td>{clock(p.end)}</td><td>{_e(p.note)}</td></tr>" for p in review.phases)
    return (
        "<h2>Mission timeline</h2>"
        + _figure(plots.timeline(review), "Phases, injects (triangles: on time; diamonds: on a "
                  "condition or the trainer; colour: priority), objectives met (stars), operator "
                  "turns (blue; red: the operator interrupted the twin) and twin reports (grey).",
                  "nothing to draw: the log holds no mission event or turn")
        + _table("phases", ["phase", "title", "start", "end", "started early because"],
                 [phases] if phases else [], "no phase started in this log")
        + _table("events", ["time", "mission time (s)", "kind", "name", "priority", "text",
                            "why (when not on time)"], rows, "no mission events in this log")
    )


def _objectives(review: SessionReview) -> str:
    rows = [
        f'<tr data-objective="{_e(o.id)}"><td>{_e(o.id)}</td><td>{_e(o.text)}</td>'
        f"<td>{_e(o.phase)}</td><td class={'met' if o.met else 'unmet'}>"
        f"{'met' if o.met else 'not met'}</td><td>{clock(o.t) if o.t is not None else ''}</td>"
        f"<td>{_e(o.reason)}</td></tr>" for o in review.objectives]
    return "<h2>Objectives</h2>" + _table(
        "objectives", ["objective", "text", "phase", "status", "time", "how"], rows,
        "the log names no objectives")


def _affect(review: SessionReview) -> str:
    shifts = [
        f"<tr><td>{clock(s.t)}</td><td>{_e(s.turn)}</td><td>{_e(s.shift)}</td>"
        f"<td>{s.valence:+.2f} / {s.arousal:+.2f}</td><td>{_e(s.before)}</td>"
        f"<td>{_e(s.twin_before)}</td><td>{_e(s.said)}</td><td>{_e(s.reply)}</td></tr>"
        for s in review.shifts]
    estimates = [r for r in review.affect if r.kind == "estimate"]
    per_utterance = []
    for row in estimates:
        views = "; ".join(
            f"{v.modality}: {v.label} v{v.valence:+.2f} a{v.arousal:+.2f} w{v.weight:.2f}"
            if v.available else f"{v.modality}: unavailable" for v in row.modalities)
        per_utterance.append(
            f"<tr><td>{clock(row.t)}</td><td>{_e(row.turn)}</td><td>{_e(row.label)}</td>"
            f"<td>{row.valence:+.2f}</td><td>{row.arousal:+.2f}</td><td>{row.confidence:.2f}</td>"
            f"<td>{_e(views)}</td></tr>")
    return (
        "<h2>Operator affect</h2>"
        + _figure(plots.affect(review), "Valence and arousal of the operator: fused per utterance "
                  "(black), the smoothed operator state (dashed) and each modality's own view "
                  "(dots, sized by its weight in the fusion); below, each modality's weight and "
                  "the fused emotion with its confidence.",
                  "no emotion estimates in this log (the session ran without the emotion "
                  "modeller)")
        + "<h3>Emotion shifts and the words around them</h3>"
        + _table("shifts", ["time", "turn", "shift", "valence / arousal",
                            "operator before", "twin just before", "operator said",
                            "twin replied"], shifts,
                 "no emotion shift was detected")
        + "<h3>Per utterance</h3>"
        + _table("affect", ["time", "turn", "fused", "valence", "arousal", "confidence",
                            "modalities"], per_utterance, "no per-utterance estimate")
    )


def _evidence(turn: TurnRow) -> str:
    if not turn.evidence:
        return '<span class="empty">none</span>'
    items = "".join(f"<li><b>{_e(e.id)}</b> ({e.score:.2f}): {_e(_short(e.text, 160))}</li>"
                    for e in turn.evidence)
    return f"<ul>{items}</ul>"


def _turns(review: SessionReview) -> str:
    rows = []
    for t in review.turns:
        reasons = "".join(f"<li>{_e(r)}</li>" for r in t.reasons)
        hedge = " hedged" if t.hedge else ""
        decision = (f"{_e(t.intent)} ({_e(t.style)}{hedge}), confidence {_num(t.confidence)}"
                    if t.intent else '<span class="empty">no decision in the log</span>')
        said = _e(t.operator_text) if t.kind == "operator" else (
            f"<span class=small>report: {_e(_short(t.question, 120))}</span>")
        cut = f"<br><span class=unmet>{_e(t.cut)}</span>" if t.cut else ""
        emotion = f"<br><span class=small>emotion: {_e(t.emotion)}</span>" if t.emotion else ""
        rows.append(
            f'<tr class="{_e(t.kind)}" data-turn="{t.turn}" data-kind="{_e(t.kind)}">'
            f"<td>{t.turn}</td><td>{clock(t.start)}</td><td>{said}{emotion}</td>"
            f"<td>{decision}</td><td>{_e(t.reply)}{cut}</td><td>{_evidence(t)}</td>"
            f"<td><ul>{reasons}</ul></td></tr>")
    return "<h2>Turns: what was said, what the twin decided and why</h2>" + _table(
        "turns", ["turn", "time", "operator said", "decision", "twin replied",
                  "evidence", "reasons"], rows, "no turns in this log")


def _latency(review: SessionReview) -> str:
    rows = []
    for t in review.turns:
        if t.kind != "operator":
            continue
        cells = "".join(f"<td>{_num(t.latency.get(stage))}</td>" for stage in STAGES)
        rows.append(f'<tr data-turn="{t.turn}"><td>{t.turn}</td>{cells}'
                    f"<td><b>{_num(t.latency.get('total'))}</b></td></tr>")
    header = ["turn", *(STAGE_NAMES[s] for s in STAGES), "total (s)"]
    return (
        "<h2>Latency per turn, by stage (seconds)</h2>"
        + _figure(plots.latency(review), "From the end of the operator's speech to the first "
                  "audio of the twin's reply, stage by stage, as recorded in the log.",
                  "no operator turn with stage times in this log")
        + _table("latency", header, rows, "no operator turns")
    )


def _errors(review: SessionReview) -> str:
    rows = [f"<tr><td>{clock(e.t)}</td><td>{_e(e.actor)}</td><td>{_e(e.error)}</td>"
            f"<td>{'yes' if e.recoverable else 'no'}</td><td>{_e(e.action)}</td></tr>"
            for e in review.errors]
    return "<h2>Actor errors</h2>" + _table(
        "errors", ["time", "actor", "error", "recoverable", "action"], rows,
        "no actor reported an error")


def render_html(review: SessionReview) -> str:
    """The whole report page."""
    body = "".join([_header(review), _moments(review), _timeline(review), _objectives(review),
                    _affect(review), _turns(review), _latency(review), _errors(review)])
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>twin review: {_e(review.session)}</title><style>{_CSS}</style></head>"
            f"<body>{body}<p class=small>Written by twin review from {_e(review.path)}.</p>"
            f"</body></html>")
