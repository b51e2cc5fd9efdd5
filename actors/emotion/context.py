"""The operator's emotional state across turns: smoothing, trend, shifts, stress, engagement.

In: one fused estimate per operator utterance (``Observation``: its distribution, valence,
arousal, confidence, the utterance, what the twin said just before it, and a few engagement
signs). Out, from ``ConversationContext.update``: an ``OperatorState`` when the state changed
(``None`` otherwise).

- smoothing: an exponential moving average whose step is ``alpha * confidence`` (the first
  estimate is taken as it is): a confident estimate moves the state, a weak one barely does;
- label: the most probable label of the smoothed distribution;
- shift: the smoothed label leaves the settled label, leading it by ``shift_margin`` on an
  estimate with at least ``shift_min_confidence``: "neutral->fearful". The utterance most
  associated with it is the one, since the settled label was last confirmed, that pushed the
  new label hardest over the old (step x (p_new - p_old)); the twin's utterance before it rides
  along;
- stress (0..1): positive arousal, negative valence and the fear/anger probability, smoothed;
  also published as ``workload``, which the mind reads;
- engagement (0..1): the mean of the signs available: the face's coverage of the utterance
  (looking at the camera), words per turn (up to 8) and arousal; smoothed the same way;
- trend: the least-squares slope over the last ``trend_window`` states of (valence - stress):
  above ``trend_slope`` per turn "improving", below minus it "worsening", else "steady".

A state is published when the label, trend or a shift is new, or valence, arousal, stress or
engagement moved by ``min_change`` since the last published state (0 by default: every utterance
updates the state, and the log shows it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from actors.emotion.labels import finite, normalise, top
from twin.messages import EMOTION_LABELS, OperatorState


@dataclass(frozen=True)
class Observation:
    """One utterance's fused estimate, as the context sees it."""

    probabilities: Mapping[str, float]
    valence: float
    arousal: float
    confidence: float
    turn: int | None = None
    text: str = ""
    twin_before: str = ""  # what the twin said last before this utterance
    face_coverage: float | None = None  # None: no face modality
    words: int = 0


@dataclass(frozen=True)
class _Step:
    observation: Observation
    alpha: float


class ContextSettings(BaseModel):
    """How the state follows the estimates (see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(0.6, gt=0, le=1, description="EMA step for a fully confident estimate")
    shift_margin: float = Field(0.05, ge=0, le=1)
    shift_min_confidence: float = Field(0.2, ge=0, le=1)
    trend_window: int = Field(5, ge=2)
    trend_slope: float = Field(0.04, ge=0)
    min_change: float = Field(0.0, ge=0, description="0: a state after every utterance; more: "
                              "only when valence, arousal, stress or engagement moved this much")


def _ema(old: float, new: float, alpha: float) -> float:
    return (1 - alpha) * old + alpha * new


def slope(values: list[float]) -> float:
    """Least-squares slope per step of ``values`` (0 for fewer than 2)."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


def stress_of(probabilities: Mapping[str, float], valence: float, arousal: float) -> float:
    fear_anger = finite(probabilities.get("fearful", 0.0)) + finite(probabilities.get("angry", 0.0))
    level = 0.45 * max(0.0, arousal) + 0.35 * max(0.0, -valence) + 0.4 * fear_anger
    return max(0.0, min(1.0, level))


def engagement_of(observation: Observation) -> float:
    signs = [min(1.0, observation.words / 8.0), (max(-1.0, min(1.0, observation.arousal)) + 1) / 2]
    if observation.face_coverage is not None:
        signs.append(max(0.0, min(1.0, observation.face_coverage)))
    return sum(signs) / len(signs)


class ConversationContext:
    """The running operator state (see the module doc)."""

    def __init__(self, settings: ContextSettings | None = None) -> None:
        self.settings = settings or ContextSettings()
        self.probabilities: dict[str, float] | None = None
        self.valence = self.arousal = self.confidence = 0.0
        self.stress = self.engagement = 0.0
        self.settled: str | None = None
        self.since_settled: list[_Step] = []
        self.history: deque[float] = deque(maxlen=self.settings.trend_window)
        self.trend = "steady"
        self.last: OperatorState | None = None
        self.shifts: list[OperatorState] = []

    @property
    def label(self) -> str:
        return top(self.probabilities) if self.probabilities is not None else "neutral"

    def update(self, observation: Observation) -> OperatorState | None:
        """Take one utterance's estimate; the new ``OperatorState`` if it changed, else None."""
        s = self.settings
        confidence = max(0.0, min(1.0, finite(observation.confidence)))
        probabilities = normalise(observation.probabilities)
        valence = max(-1.0, min(1.0, finite(observation.valence)))
        arousal = max(-1.0, min(1.0, finite(observation.arousal)))
        stress = stress_of(probabilities, valence, arousal)
        engagement = engagement_of(observation)
        if self.probabilities is None:
            alpha = 1.0
            self.probabilities = probabilities
            self.valence, self.arousal, self.stress = valence, arousal, stress
            self.engagement, self.confidence = engagement, confidence
        else:
            alpha = s.alpha * confidence
            self.probabilities = normalise({k: _ema(self.probabilities[k], probabilities[k], alpha)
                                            for k in EMOTION_LABELS})
            self.valence = _ema(self.valence, valence, alpha)
            self.arousal = _ema(self.arousal, arousal, alpha)
            self.stress = _ema(self.stress, stress, alpha)
            self.engagement = _ema(self.engagement, engagement, max(alpha, 0.2))
            self.confidence = _ema(self.confidence, confidence, 0.5)
        self.since_settled.append(_Step(observation, alpha))
        self.history.append(self.valence - self.stress)
        trend_slope = slope(list(self.history))
        self.trend = ("improving" if trend_slope > s.trend_slope
                      else "worsening" if trend_slope < -s.trend_slope else "steady")
        shift, cause = self._shift(confidence)
        state = OperatorState(
            label=self.label, valence=round(self.valence, 4), arousal=round(self.arousal, 4),
            confidence=round(self.confidence, 4), trend=self.trend,  # type: ignore[arg-type]
            shift=shift, workload=round(self.stress, 4), stress=round(self.stress, 4),
            engagement=round(self.engagement, 4),
            shift_turn=cause.turn if cause else None,
            shift_utterance=cause.text if cause else "",
            shift_twin_utterance=cause.twin_before if cause else "",
            turn=observation.turn)
        if shift is not None:
            self.shifts.append(state)
        if not self._changed(state):
            return None
        self.last = state
        return state

    def _shift(self, confidence: float) -> tuple[str | None, Observation | None]:
        assert self.probabilities is not None
        s = self.settings
        label = self.label
        if self.settled is None:
            self.settled = label
            self.since_settled = self.since_settled[-1:]
            return None, None
        old = self.settled
        if label == old:
            self.since_settled = self.since_settled[-1:]  # the settled label is confirmed
            return None, None
        lead = self.probabilities[label] - self.probabilities[old]
        if lead < s.shift_margin or confidence < s.shift_min_confidence:
            return None, None
        cause = max(self.since_settled, key=lambda step: step.alpha * (
            normalise(step.observation.probabilities)[label]
            - normalise(step.observation.probabilities)[old])).observation
        self.settled = label
        self.since_settled = self.since_settled[-1:]
        return f"{old}->{label}", cause

    def _changed(self, state: OperatorState) -> bool:
        last = self.last
        if last is None or state.shift is not None:
            return True
        if state.label != last.label or state.trend != last.trend:
            return True
        moved = max(abs(state.valence - last.valence), abs(state.arousal - last.arousal),
                    abs(state.stress - last.stress), abs(state.engagement - last.engagement))
        return moved >= self.settings.min_change
