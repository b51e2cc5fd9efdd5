"""The report's figures, drawn with matplotlib and returned as inline SVG text.

In: a :class:`twin.review.session.SessionReview`. Out: SVG strings (no XML prologue, ready to be
placed in an HTML page), or ``None`` when the session holds nothing to plot (no affect in a
session that ran without the emotion modeller, no answered turn).

matplotlib is imported inside each function (the ``review`` extra), with the Agg backend, so
``import twin`` and the rest of the review work without it.
"""

from __future__ import annotations

import io
import itertools
import re
from typing import TYPE_CHECKING, Any

from twin.review.session import STAGE_NAMES, STAGES, SessionReview

if TYPE_CHECKING:
    from matplotlib.figure import Figure

INSTALL_HINT = "the report's plots need matplotlib: pip install 'twin[review]'"
MODALITY_COLOURS = {"text": "#1f77b4", "voice": "#ff7f0e", "face": "#2ca02c"}
PRIORITY_COLOURS = {"routine": "#4c72b0", "priority": "#dd8452", "flash": "#c44e52"}
STAGE_COLOURS = dict(zip(STAGES, ("#c44e52", "#8172b3", "#64b5cd", "#55a868", "#ccb974"),
                         strict=True))


class PlotError(RuntimeError):
    """matplotlib is missing."""


def _figure(height: float, rows: int = 1) -> tuple[Figure, Any]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError as error:
        raise PlotError(f"{INSTALL_HINT} ({error})") from None
    figure = Figure(figsize=(10, height), layout="constrained")
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return figure, axes


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    text = buffer.getvalue()
    start = text.find("<svg")
    return re.sub(r"<!--.*?-->", "", text[start:], flags=re.DOTALL) if start >= 0 else text


def _xlim(review: SessionReview) -> tuple[float, float]:
    """The same time axis for every figure: the mission's start (or earlier) to the end."""
    first = min([0.0, *(e.t for e in review.events), *(t.start for t in review.turns)])
    return first - 1.0, max(review.duration, 1.0) + 1.0


def timeline(review: SessionReview) -> str | None:
    """Phases as bands, injects and other mission events as marks, turns as spans."""
    if not (review.phases or review.events or review.turns):
        return None
    figure, (axis,) = _figure(3.4)
    lanes = {"phases": 3, "events": 2, "operator": 1, "twin": 0}
    palette = ["#e8eef7", "#f4e9dc", "#e6f2e6", "#f2e4ec", "#efeede"]
    for index, phase in enumerate(review.phases):
        width = max(phase.end - phase.start, 0.01)
        axis.broken_barh([(phase.start, width)], (lanes["phases"] - 0.4, 0.8),
                         facecolors=palette[index % len(palette)], edgecolors="#888")
        axis.text(phase.start + width / 2, lanes["phases"], phase.id, ha="center",
                  va="center", fontsize=8, clip_on=True)
    for event in review.events:
        if event.kind == "inject":
            colour = PRIORITY_COLOURS.get(event.priority, "#4c72b0")
            marker = "D" if event.reason else "v"
            axis.plot(event.t, lanes["events"], marker=marker, color=colour, markersize=8)
            axis.annotate(event.name, (event.t, lanes["events"]), xytext=(0, 7),
                          textcoords="offset points", rotation=35, fontsize=7)
        elif event.kind == "objective_met":
            axis.plot(event.t, lanes["events"], marker="*", color="#2ca02c", markersize=11)
        elif event.kind in ("paused", "resumed", "mission_ended"):
            axis.axvline(event.t, color="#999", linestyle=":", linewidth=1)
    for turn in review.turns:
        lane = lanes["operator"] if turn.kind == "operator" else lanes["twin"]
        length = max(turn.speech_duration or 1.0, 0.5)
        colour = "#c44e52" if turn.cut else ("#4c72b0" if turn.kind == "operator" else "#999")
        axis.broken_barh([(turn.start, length)], (lane - 0.3, 0.6), facecolors=colour)
    axis.set_yticks(list(lanes.values()), ["phases", "injects, objectives", "operator turns",
                                           "twin reports"])
    axis.set_ylim(-0.7, 3.7)
    axis.set_xlim(*_xlim(review))
    axis.set_xlabel("seconds from the mission's start")
    axis.grid(axis="x", alpha=0.3)
    return _svg(figure)


def affect(review: SessionReview) -> str | None:
    """Valence and arousal over time (fused and per modality), and each modality's weight."""
    estimates = [row for row in review.affect if row.kind == "estimate"]
    states = [row for row in review.affect if row.kind == "state"]
    if not estimates and not states:
        return None
    figure, axes = _figure(6.8, rows=3)
    for axis, name in zip(axes[:2], ("valence", "arousal"), strict=True):
        if estimates:
            axis.plot([r.t for r in estimates], [getattr(r, name) for r in estimates],
                      color="black", marker="o", linewidth=1.6, label="fused (per utterance)")
        if states:
            axis.plot([r.t for r in states], [getattr(r, name) for r in states],
                      color="#7f7f7f", linestyle="--", linewidth=1.2,
                      label="operator state (smoothed)")
        for modality, colour in MODALITY_COLOURS.items():
            points = [(r.t, getattr(v, name), v.weight) for r in estimates
                      for v in r.modalities if v.modality == modality and v.available]
            if points:
                axis.scatter([p[0] for p in points], [p[1] for p in points],
                             s=[20 + 160 * max(p[2], 0.0) for p in points], color=colour,
                             alpha=0.6, label=f"{modality} (size: weight)")
        axis.axhline(0, color="#bbb", linewidth=0.8)
        axis.set_ylim(-1.05, 1.05)
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=7, ncol=3)
    weights = axes[2]
    if estimates:
        width = _bar_width([r.t for r in estimates])
        bottom = [0.0] * len(estimates)
        for modality, colour in MODALITY_COLOURS.items():
            heights = [next((v.weight for v in r.modalities
                             if v.modality == modality and v.available), 0.0) for r in estimates]
            weights.bar([r.t for r in estimates], heights, width=width, bottom=bottom,
                        color=colour, label=modality)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        for row, top in zip(estimates, bottom, strict=True):
            weights.annotate(f"{row.label} {row.confidence:.2f}", (row.t, top), xytext=(0, 2),
                             textcoords="offset points", ha="center", fontsize=7, rotation=30)
        weights.legend(loc="upper left", fontsize=7, ncol=3)
    for shift in review.shifts:
        for axis in axes:
            axis.axvline(shift.t, color="#c44e52", linestyle=":", linewidth=1)
    weights.set_xlim(*_xlim(review))
    weights.set_ylabel("modality weight")
    weights.set_ylim(0, 1.35)
    weights.set_xlabel("seconds from the mission's start (dotted red: an emotion shift)")
    return _svg(figure)


def latency(review: SessionReview) -> str | None:
    """Each operator turn's delay from the end of their speech to the first audio, by stage."""
    turns = [t for t in review.turns if t.kind == "operator" and t.latency]
    if not turns:
        return None
    figure, (axis,) = _figure(max(1.6, 0.45 * len(turns) + 1.0))
    labels = [f"turn {t.turn}" for t in turns]
    left = [0.0] * len(turns)
    for stage in STAGES:
        widths = [t.latency.get(stage, 0.0) for t in turns]
        axis.barh(labels, widths, left=left, color=STAGE_COLOURS[stage],
                  label=STAGE_NAMES[stage])
        left = [a + b for a, b in zip(left, widths, strict=True)]
    axis.invert_yaxis()
    axis.set_xlabel("seconds after the end of the operator's speech")
    axis.legend(loc="lower right", fontsize=7)
    axis.grid(axis="x", alpha=0.3)
    return _svg(figure)


def _bar_width(times: list[float]) -> float:
    gaps = [b - a for a, b in itertools.pairwise(times) if b > a]
    return max(0.5, min(gaps, default=4.0) * 0.6)
