"""Phonemes to visemes: the mouth shapes of a synthesised sentence, in step with its audio.

Data in: the ``PhonemeSpan`` list of a ``Synthesis`` (``actors.voices``): espeak-ng IPA as piper
and espeak-ng emit it. Data out: a ``twin.messages.Viseme`` track that starts at 0, is contiguous
and covers the audio exactly, so viseme and audio are in step by construction.

The viseme set is the 15 Oculus (MPEG-4 style) visemes::

    sil  silence             PP  p b m (lips closed)   FF  f v           TH  θ ð
    DD   t d (tongue tip)    kk  k g ŋ h               CH  tʃ dʒ ʃ ʒ     SS  s z
    nn   n l                 RR  r ɹ ɚ                 aa  ɑ a æ ʌ       E   ɛ e ə ɜ
    ih   ɪ i j               oh  o ɔ ɒ                 ou  u ʊ w

``PHONEME_VISEMES`` maps every symbol of the piper voices' phoneme table (all IPA letters, not
only English) to one of them; ``ARKIT_BLENDSHAPES`` gives, per viseme, the ARKit blendshape
weights (``jawOpen``, ``mouthClose``, ``mouthFunnel``, ...) a 3D head applies to show it.

How the phoneme stream becomes a track (``visemes_for``):

1. Symbols that are not sounds carry no shape of their own. Stress marks (ˈ ˌ) precede the
   stressed vowel: their time goes to the next sound. Length (ː ˑ) and diacritics (combining
   marks, ʰ ʲ ˤ ˞, tone digits) extend the previous sound. A word boundary (space) is split
   between the sounds either side: speech runs on across words. Sentence markers (^ $), pauses
   (_) and punctuation are silence.
2. A multi-symbol phoneme of espeak (``oʊ``, ``aɪ``, ``əl``) is split evenly into its sounds;
   affricates (``tʃ``, ``dʒ``, ``ts``) are one sound.
3. Equal neighbours merge; then, co-articulation, any segment shorter than ``MIN_SEGMENT`` (40 ms)
   is absorbed by the neighbour whose mouth shape is closest to it (by blendshape distance), so
   the mouth does not flicker on 20 ms phonemes. A bilabial closure (PP) is never absorbed: the
   lips must close on p, b and m, however short they are.
"""

# IPA symbols and typographic marks are this module's subject, not look-alike typos:
# ruff: noqa: RUF001, RUF002

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from actors.voices import PhonemeSpan
from twin.messages import Viseme

VISEMES: tuple[str, ...] = (
    "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou",
)
MIN_SEGMENT = 0.040  # seconds: shorter segments are absorbed by a neighbour (except PP)

_GROUPS: dict[str, str] = {
    # consonants
    "PP": "pbmʘʙɓ",
    "FF": "fvɱʋⱱɸβ",
    "TH": "θð",
    "DD": "tdʈɖɗɾɽɺǀǁǂǃ",
    "kk": "kgɡqɢɠʛxɣχʁħʕʔhɦʜʢʡɰŋcɟ",
    "CH": "ʃʒɕʑʂʐçʝɧʄ",
    "SS": "sz",
    "nn": "nlɫɬɮɭʟɲɳɴʎ",
    "RR": "ɹrɻʀɚ",
    # vowels and glides
    "aa": "aɑɐæʌɶɒ",
    "E": "eɛəɜɘɞεœ",
    "ih": "iɪɨᵻɯjɤ",
    "oh": "oɔɵø",
    "ou": "uʊʉyʏwʍɥ",
}
PHONEME_VISEMES: dict[str, str] = {
    symbol: viseme for viseme, symbols in _GROUPS.items() for symbol in symbols
}
PHONEME_VISEMES.update({"tʃ": "CH", "dʒ": "CH", "ts": "SS", "dz": "SS", "ɝ": "RR"})

SILENCE = set("^$_.,;:!?\"()#-'") | {"", "…"}  # sentence markers, pauses, punctuation
BOUNDARY = " "  # word boundary: split between its neighbours
STRESS = set("ˈˌ")  # attach to the next sound
MODIFIERS = set("ːˑ˞ˤʰʲ↓↑ˠ0123456789")  # attach to the previous sound (and combining marks)

Role = Literal["sound", "silence", "boundary", "next", "previous"]


def role_of(symbol: str) -> Role:
    """What a phoneme symbol is, for timing: a sound, silence, a word boundary, or a mark that
    attaches to the next (stress) or previous (length, diacritic) sound."""
    if symbol == BOUNDARY:
        return "boundary"
    if symbol in SILENCE or not symbol.strip():
        return "silence"
    if symbol in STRESS:
        return "next"
    if all(c in MODIFIERS or c in STRESS or _combining(c) for c in symbol):
        return "previous"
    return "sound"


def _combining(char: str) -> bool:
    import unicodedata

    return unicodedata.combining(char) > 0


def sounds_of(symbol: str) -> list[str]:
    """The visemes of the sounds in one phoneme symbol, in order ("oʊ" -> ["oh", "ou"]).

    Stress, length and diacritics are skipped; unknown letters are dropped; an empty result
    means the symbol has no sound of its own.
    """
    visemes: list[str] = []
    i = 0
    while i < len(symbol):
        pair = symbol[i:i + 2]
        if len(pair) == 2 and pair in PHONEME_VISEMES:
            visemes.append(PHONEME_VISEMES[pair])
            i += 2
            continue
        viseme = PHONEME_VISEMES.get(symbol[i])
        if viseme is not None:
            visemes.append(viseme)
        i += 1
    return visemes


def viseme_of(symbol: str) -> str:
    """The viseme of a phoneme symbol (the first sound's; ``sil`` for silence and marks)."""
    if role_of(symbol) != "sound":
        return "sil"
    sounds = sounds_of(symbol)
    return sounds[0] if sounds else "sil"


# ---------------------------------------------------------------------------- blendshapes

# ARKit blendshape weights (0..1) per viseme; names as in ARKit's ARFaceAnchor.BlendShapeLocation.
# A head shows a viseme by setting these (blend between consecutive visemes for smooth motion).
ARKIT_BLENDSHAPES: dict[str, dict[str, float]] = {
    "sil": {},
    "PP": {"mouthClose": 0.6, "mouthPressLeft": 0.5, "mouthPressRight": 0.5,
           "mouthRollLower": 0.3, "mouthRollUpper": 0.2, "jawOpen": 0.05},
    "FF": {"jawOpen": 0.1, "mouthRollLower": 0.6, "mouthUpperUpLeft": 0.3,
           "mouthUpperUpRight": 0.3, "mouthFunnel": 0.1},
    "TH": {"jawOpen": 0.15, "tongueOut": 0.5, "mouthStretchLeft": 0.1,
           "mouthStretchRight": 0.1},
    "DD": {"jawOpen": 0.2, "mouthStretchLeft": 0.2, "mouthStretchRight": 0.2,
           "mouthShrugUpper": 0.1},
    "kk": {"jawOpen": 0.25, "mouthStretchLeft": 0.25, "mouthStretchRight": 0.25},
    "CH": {"jawOpen": 0.15, "mouthFunnel": 0.5, "mouthPucker": 0.3, "mouthShrugUpper": 0.2},
    "SS": {"jawOpen": 0.08, "mouthStretchLeft": 0.4, "mouthStretchRight": 0.4,
           "mouthSmileLeft": 0.2, "mouthSmileRight": 0.2},
    "nn": {"jawOpen": 0.15, "mouthStretchLeft": 0.15, "mouthStretchRight": 0.15,
           "mouthClose": 0.1},
    "RR": {"jawOpen": 0.15, "mouthFunnel": 0.3, "mouthPucker": 0.35},
    "aa": {"jawOpen": 0.7, "mouthFunnel": 0.1, "mouthLowerDownLeft": 0.3,
           "mouthLowerDownRight": 0.3},
    "E": {"jawOpen": 0.4, "mouthStretchLeft": 0.35, "mouthStretchRight": 0.35,
          "mouthSmileLeft": 0.15, "mouthSmileRight": 0.15},
    "ih": {"jawOpen": 0.25, "mouthStretchLeft": 0.45, "mouthStretchRight": 0.45,
           "mouthSmileLeft": 0.3, "mouthSmileRight": 0.3},
    "oh": {"jawOpen": 0.45, "mouthFunnel": 0.6, "mouthPucker": 0.3},
    "ou": {"jawOpen": 0.15, "mouthFunnel": 0.4, "mouthPucker": 0.8},
}


def shape_distance(a: str, b: str) -> float:
    """How different two visemes look: Euclidean distance of their blendshape weights."""
    first, second = ARKIT_BLENDSHAPES[a], ARKIT_BLENDSHAPES[b]
    keys = set(first) | set(second)
    return math.sqrt(sum((first.get(k, 0.0) - second.get(k, 0.0)) ** 2 for k in keys))


# ---------------------------------------------------------------------------- the track


@dataclass
class _Segment:
    viseme: str
    start: float


def _anchors(phonemes: Sequence[PhonemeSpan]) -> list[_Segment]:
    """Each sound's segment with its start moved back over the marks that belong to it."""
    segments: list[_Segment] = []
    claim: float | None = None  # earliest time a pending stress mark or boundary hands over
    for span in sorted(phonemes, key=lambda p: p.start):
        role = role_of(span.phoneme)
        if role == "previous":
            if not segments and claim is None:
                claim = span.start
            continue
        if role == "next":
            claim = span.start if claim is None else claim
            continue
        if role == "boundary":
            if claim is None:
                claim = span.start + span.duration / 2 if segments else span.start
            continue
        visemes = ["sil"] if role == "silence" else sounds_of(span.phoneme) or ["sil"]
        begin = span.start if claim is None else min(claim, span.start)
        claim = None
        step = span.duration / len(visemes)
        for k, viseme in enumerate(visemes):
            segments.append(_Segment(viseme, begin if k == 0 else span.start + k * step))
    return segments


def visemes_for(phonemes: Sequence[PhonemeSpan], audio_duration: float,
                min_segment: float = MIN_SEGMENT) -> list[Viseme]:
    """The viseme track of ``phonemes`` over ``audio_duration`` seconds (see the module doc).

    The track starts at 0, each viseme starts where the previous ends, and the durations add up
    to ``audio_duration``. No segment is shorter than ``min_segment`` except PP (and a track
    shorter than that in total).
    """
    if audio_duration <= 0:
        return []
    segments = [s for s in _anchors(phonemes) if s.start < audio_duration]
    if not segments:
        return [Viseme(viseme="sil", start=0.0, duration=audio_duration)]
    segments[0].start = 0.0
    starts = [s.start for s in segments]
    for i in range(1, len(starts)):  # monotonic: a mark can not move a sound before its predecessor
        starts[i] = max(starts[i], starts[i - 1])
    for segment, start in zip(segments, starts, strict=True):
        segment.start = start
    segments = _merge_equal(segments)
    segments = _smooth(segments, audio_duration, min_segment)
    track: list[Viseme] = []
    for i, segment in enumerate(segments):
        end = segments[i + 1].start if i + 1 < len(segments) else audio_duration
        track.append(Viseme(viseme=segment.viseme, start=segment.start,
                            duration=end - segment.start))
    return track


def _merge_equal(segments: list[_Segment]) -> list[_Segment]:
    merged: list[_Segment] = []
    for segment in segments:
        if merged and segment.start <= merged[-1].start:
            merged.pop()  # a predecessor of no length: the later sound wins
        if merged and merged[-1].viseme == segment.viseme:
            continue
        merged.append(segment)
    return merged


def _smooth(segments: list[_Segment], total: float, min_segment: float) -> list[_Segment]:
    """Absorb short segments into their most similar neighbour until none is left (but PP)."""
    while len(segments) > 1:
        ends = [s.start for s in segments[1:]] + [total]
        short = [(end - s.start, i) for i, (s, end) in enumerate(zip(segments, ends, strict=True))
                 if end - s.start < min_segment and s.viseme != "PP"]
        if not short:
            break
        _, i = min(short)
        viseme = segments[i].viseme
        options = [j for j in (i - 1, i + 1) if 0 <= j < len(segments)]
        j = min(options, key=lambda k: (shape_distance(viseme, segments[k].viseme), k > i))
        if j < i:
            del segments[i]  # the previous segment now runs on to the next start
        else:
            segments[j].start = segments[i].start
            del segments[i]
        segments = _merge_equal(segments)
    return segments


def blendshapes_at(track: Sequence[Viseme], t: float) -> dict[str, float]:
    """The ARKit blendshape weights of the viseme held at ``t`` (for heads without their own
    viseme table)."""
    for viseme in track:
        if viseme.start <= t < viseme.start + viseme.duration:
            return {k: v * viseme.weight for k, v in ARKIT_BLENDSHAPES[viseme.viseme].items()}
    return {}
