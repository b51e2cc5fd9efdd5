"""Exports of a reviewed session for analysis in other tools: JSON, and CSV tables.

In: a :class:`twin.review.session.SessionReview`. Out: ``to_json`` — the whole review as one JSON
document (what the HTML report shows, as data); ``write_csv`` — ``turns.csv`` (one row per
operator turn or twin report: words, decision, reply, stage latencies), ``affect.csv`` (one row
per emotion estimate or operator state, with each modality's view in its own columns) and
``events.csv`` (one row per mission event) in a folder. Times are seconds from the mission's
start, as in the report.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

from twin.review.session import STAGES, SessionReview

MODALITIES = ("text", "voice", "face")


def to_dict(review: SessionReview) -> dict[str, Any]:
    data: dict[str, Any] = dataclasses.asdict(review)
    return data


def to_json(review: SessionReview) -> str:
    return json.dumps(to_dict(review), indent=2, ensure_ascii=False)


def _write(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)


def write_csv(review: SessionReview, folder: str | Path) -> list[Path]:
    """Write turns.csv, affect.csv and events.csv into ``folder`` (created); their paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    turns = out / "turns.csv"
    _write(turns, ["turn", "kind", "time_s", "operator_text", "transcript_confidence",
                   "speech_duration_s", "trigger", "intent", "style", "hedge", "confidence",
                   "evidence", "reasons", "reply", "interrupted", "emotion",
                   *(f"{stage}_s" for stage in STAGES), "total_s"],
           [[t.turn, t.kind, t.start, t.operator_text, t.transcript_confidence,
             t.speech_duration, t.trigger, t.intent, t.style, t.hedge, t.confidence,
             " | ".join(f"{e.id} ({e.score:.2f})" for e in t.evidence), " | ".join(t.reasons),
             t.reply, t.cut, t.emotion, *(t.latency.get(stage) for stage in STAGES),
             t.latency.get("total")] for t in review.turns])
    affect = out / "affect.csv"
    columns = [f"{m}_{f}" for m in MODALITIES
               for f in ("label", "valence", "arousal", "confidence", "weight")]
    rows = []
    for row in review.affect:
        views = {v.modality: v for v in row.modalities if v.available}
        cells: list[Any] = []
        for modality in MODALITIES:
            view = views.get(modality)
            cells += ([view.label, view.valence, view.arousal, view.confidence, view.weight]
                      if view else [None] * 5)
        rows.append([row.t, row.turn, row.kind, row.label, row.valence, row.arousal,
                     row.confidence, row.trend, row.shift, row.workload, row.stress,
                     row.engagement, *cells])
    _write(affect, ["time_s", "turn", "kind", "label", "valence", "arousal", "confidence",
                    "trend", "shift", "workload", "stress", "engagement", *columns], rows)
    events = out / "events.csv"
    _write(events, ["time_s", "mission_time_s", "kind", "name", "priority", "text", "reason"],
           [[e.t, e.mission_time, e.kind, e.name, e.priority, e.text, e.reason]
            for e in review.events])
    return [turns, affect, events]
