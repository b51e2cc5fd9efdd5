"""Text-to-speech backends with phoneme timing: a library module, not an actor.

``load_voice(name)`` gives a ``Voice``; ``voice.synthesize(text)`` turns a sentence (or several)
into a ``Synthesis``: 16-bit mono PCM, the phonemes with their times in that audio, and the word
timings. The LipSync actor turns the phonemes into a viseme track (``actors.visemes``); a scripted
operator only needs the audio. ``synthesize`` blocks: call it with ``asyncio.to_thread``.

Two backends give the same output:

- ``PiperVoice``: a piper ``.onnx`` voice (default ``piper-joe-medium`` from the model registry).
  Phoneme times come from piper's alignments (samples per phoneme id), so they sum exactly to the
  audio; phonemes are espeak-ng IPA, one code point each, with stress marks, spaces (word
  boundaries), punctuation and the sentence markers ``^``/``$``.
- ``EspeakVoice``: espeak-ng's C library through ctypes (``espeakng-loader``'s bundled copy when
  installed, else Debian's ``libespeak-ng.so.1``). Phonemes come from its phoneme events (IPA,
  possibly several code points such as ``oʊ`` or ``tʃ``), words from its word events; pauses are
  ``_``. It is the fallback when the piper voice is absent.

Text goes through ``normalize_text`` first, so numbers, units, times, callsigns and grid
references are spoken the way a radio operator says them, and characters neither backend can say
are dropped.
"""

# IPA symbols and typographic marks are this module's subject, not look-alike typos:
# ruff: noqa: RUF001

from __future__ import annotations

import ctypes
import importlib
import itertools
import logging
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

PAUSE = "_"  # the phoneme of a silence (start of audio, espeak pauses)

# ---------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PhonemeSpan:
    """A phoneme held from ``start`` for ``duration`` seconds of the audio."""

    phoneme: str
    start: float
    duration: float


@dataclass(frozen=True)
class Synthesis:
    """One synthesised text: audio and, in step with it, phonemes and words."""

    text: str  # the normalised text that was spoken
    pcm: bytes  # int16 little-endian mono
    sample_rate: int
    phonemes: list[PhonemeSpan] = field(default_factory=list)
    words: list[tuple[str, float, float]] = field(default_factory=list)  # (word, start, end)

    @property
    def duration(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate if self.sample_rate else 0.0


class Voice(Protocol):
    """A text-to-speech backend."""

    name: str
    sample_rate: int

    def synthesize(self, text: str) -> Synthesis:
        """Speak ``text`` (blocking); empty text gives empty audio."""
        ...


# ---------------------------------------------------------------------------- text normalisation

_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth",
             "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}
_ALPHABET = (
    "Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel", "India", "Juliett",
    "Kilo", "Lima", "Mike", "November", "Oscar", "Papa", "Quebec", "Romeo", "Sierra", "Tango",
    "Uniform", "Victor", "Whiskey", "X-ray", "Yankee", "Zulu",
)
NATO = dict(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", _ALPHABET, strict=True))
NATO["X"] = "X ray"

# unit -> (singular, plural); matched case-sensitively right after a number
_UNITS: dict[str, tuple[str, str]] = {
    "km/h": ("kilometre per hour", "kilometres per hour"),
    "kph": ("kilometre per hour", "kilometres per hour"),
    "mph": ("mile per hour", "miles per hour"),
    "m/s": ("metre per second", "metres per second"),
    "km": ("kilometre", "kilometres"),
    "klicks": ("klick", "klicks"),
    "m": ("metre", "metres"),
    "cm": ("centimetre", "centimetres"),
    "mm": ("millimetre", "millimetres"),
    "nm": ("nautical mile", "nautical miles"),
    "NM": ("nautical mile", "nautical miles"),
    "mi": ("mile", "miles"),
    "ft": ("foot", "feet"),
    "kg": ("kilogram", "kilograms"),
    "t": ("tonne", "tonnes"),
    "l": ("litre", "litres"),
    "L": ("litre", "litres"),
    "GHz": ("gigahertz", "gigahertz"),
    "MHz": ("megahertz", "megahertz"),
    "kHz": ("kilohertz", "kilohertz"),
    "Hz": ("hertz", "hertz"),
    "kts": ("knot", "knots"),
    "kt": ("knot", "knots"),
    "s": ("second", "seconds"),
    "sec": ("second", "seconds"),
    "min": ("minute", "minutes"),
    "mins": ("minute", "minutes"),
    "h": ("hour", "hours"),
    "hr": ("hour", "hours"),
    "hrs": ("hour", "hours"),
    "%": ("percent", "percent"),
    "°C": ("degree Celsius", "degrees Celsius"),
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°": ("degree", "degrees"),
    "V": ("volt", "volts"),
    "W": ("watt", "watts"),
}
_ABBREVIATIONS: dict[str, str] = {
    "e.g.": "for example", "i.e.": "that is", "etc.": "et cetera", "approx.": "approximately",
    "vs.": "versus", "Sgt": "Sergeant", "Sgt.": "Sergeant", "Lt": "Lieutenant",
    "Lt.": "Lieutenant", "Capt": "Captain", "Capt.": "Captain", "Cpl": "Corporal",
    "Cpl.": "Corporal", "Maj": "Major", "Maj.": "Major", "Col": "Colonel", "Col.": "Colonel",
    "Gen.": "General", "Pte": "Private", "Pvt": "Private", "Dr": "Doctor", "Dr.": "Doctor",
    "ETA": "E T A", "ETD": "E T D", "IED": "I E D", "FOB": "fob",
    "MSR": "M S R", "HQ": "H Q", "QRF": "Q R F", "LZ": "L Z", "RV": "R V", "OK": "okay",
}
_SYMBOLS = {"&": " and ", "+": " plus ", "@": " at ", "#": " number ", "=": " equals ",
            "—": ", ", "–": ", ", "…": ". ", "“": '"', "”": '"', "‘": "'", "’": "'",
            "×": " by ", "\n": ". "}
_KEEP_PUNCTUATION = set(".,;:!?'\"()-")


def number_words(n: int) -> str:
    """An integer in words: 1205 -> "one thousand two hundred five"."""
    if n < 0:
        return "minus " + number_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_words(rest)}" if rest else "")
    for scale, name in _SCALES:
        if n >= scale:
            high, rest = divmod(n, scale)
            return f"{number_words(high)} {name}" + (f" {number_words(rest)}" if rest else "")
    raise AssertionError("unreachable")


def digit_words(digits: str) -> str:
    """Digits one by one: "4930" -> "four nine three zero" (grid references, callsigns)."""
    return " ".join(_ONES[int(d)] for d in digits if d.isdigit())


def _ordinal(n: int) -> str:
    words = number_words(n).split()
    last = words[-1]
    if last in _ORDINALS:
        words[-1] = _ORDINALS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def _time_words(hhmm: str) -> str:
    """A 24-hour time as radio operators say it: 0930 -> "zero nine thirty", 1400 -> "fourteen
    hundred", 0805 -> "zero eight zero five"."""
    hours, minutes = int(hhmm[:2]), int(hhmm[2:])
    head = digit_words(hhmm[:2]) if hhmm[0] == "0" else number_words(hours)
    if minutes == 0:
        return f"{head} hundred"
    tail = digit_words(hhmm[2:]) if minutes < 10 else number_words(minutes)
    return f"{head} {tail}"


def _number_text(text: str) -> str:
    """A number as written (commas, decimals, leading zeros) in words."""
    text = text.replace(",", "")
    if "." in text:
        whole, _, fraction = text.partition(".")
        return f"{_number_text(whole or '0')} point {digit_words(fraction)}"
    if len(text) > 1 and text.startswith("0"):
        return digit_words(text)
    if len(text) > 15:
        return digit_words(text)
    return number_words(int(text))


_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_UNIT_PATTERN = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
_RULES: list[tuple[re.Pattern[str], Any]] = [
    # MGRS grid reference: "33T VM 4930 7102" -> zone, square letters, digit groups
    (re.compile(r"\b(\d{1,2})([C-HJ-NP-X])\s+([A-HJ-NP-Z])([A-HJ-NP-V])\s+(\d{1,5})\s+(\d{1,5})\b"),
     lambda m: (f"{digit_words(m[1])} {NATO[m[2]]}, {NATO[m[3]]} {NATO[m[4]]}, "
                f"{digit_words(m[5])}, {digit_words(m[6])},")),
    # "grid 4930 7102": digit groups after the word grid
    (re.compile(r"\b([Gg]rid)\s+(\d{2,5})\s+(\d{2,5})\b"),
     lambda m: f"{m[1]} {digit_words(m[2])}, {digit_words(m[3])},"),
    # date-time group and times: 0930Z, 0930 Z, 0930 hours, 09:30
    (re.compile(r"\b([01]\d|2[0-3])([0-5]\d)\s?Z\b"), lambda m: f"{_time_words(m[1] + m[2])} Zulu"),
    (re.compile(r"\b([01]\d|2[0-3])([0-5]\d)\s?(hours|hrs)\b"),
     lambda m: f"{_time_words(m[1] + m[2])} hours"),
    (re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)\b"),
     lambda m: _time_words(f"{int(m[1]):02d}{m[2]}")),
    # callsigns: Alpha-2, Bravo-12, Victor 2-1 -> digits one by one
    (re.compile(r"\b([A-Za-z]+)-(\d+)(?:-(\d+))?\b"),
     lambda m: f"{m[1]} {digit_words(m[2])}" + (f" {digit_words(m[3])}" if m[3] else "")),
    (re.compile(r"\b(\d)-(\d)\b"), lambda m: f"{digit_words(m[1])} {digit_words(m[2])}"),
    (re.compile(r"\b(\d+)-(\d+)\b"), r"\1 to \2"),
    (re.compile(r"\b[Nn]o\.\s?(?=\d)"), "number "),
    # ordinals: 1st, 2nd, 23rd, 4th
    (re.compile(r"\b(\d+)(st|nd|rd|th)\b"), lambda m: _ordinal(int(m[1]))),
    # numbers with units: 5 km, 40 %, 44.175 MHz, -5 °C
    (re.compile(rf"(?<![\w.])(-?)({_NUMBER})\s?({_UNIT_PATTERN})(?![\w])"),
     lambda m: _with_unit(m[1], m[2], m[3])),
    # plain numbers
    (re.compile(rf"(?<![\w.])(-?)({_NUMBER})(?![\w])"),
     lambda m: ("minus " if m[1] else "") + _number_text(m[2])),
    # numbers glued to letters (4x4, A320) and what is left: digit by digit
    (re.compile(r"\d+"), lambda m: f" {digit_words(m[0])} "),
]


def _with_unit(sign: str, number: str, unit: str) -> str:
    singular, plural = _UNITS[unit]
    value = number.replace(",", "")
    name = singular if value in ("1", "1.0") and not sign else plural
    return f"{'minus ' if sign else ''}{_number_text(number)} {name}"


def _allowed(char: str) -> bool:
    if char.isspace() or char in _KEEP_PUNCTUATION:
        return True
    if not char.isalpha():
        return False
    return unicodedata.name(char, "").startswith("LATIN")


def normalize_text(text: str) -> str:
    """Text as it should be spoken: numbers, units, times, callsigns and abbreviations in words.

    "Alpha-2" -> "Alpha two", "0930Z" -> "zero nine thirty Zulu", "5 km" -> "five kilometres",
    "40 %" -> "forty percent", "44.175 MHz" -> "forty four point one seven five megahertz",
    "33T VM 4930 7102" -> "three three Tango, Victor Mike, four nine three zero, seven one zero
    two,". Characters outside Latin letters, digits and plain punctuation are dropped; never raises.
    """
    text = unicodedata.normalize("NFKC", str(text))
    # Rules can uncover work for each other ("0Lt" -> "zero Lt" -> "zero Lieutenant"): apply
    # them until nothing changes, so that normalised text normalises to itself.
    for _ in range(4):
        spoken = _normalize_once(text)
        if spoken == text:
            break
        text = spoken
    return text


def _normalize_once(text: str) -> str:
    """One pass of ``normalize_text``'s rules."""
    for symbol, spoken in _SYMBOLS.items():
        text = text.replace(symbol, spoken)
    for abbreviation, spoken in sorted(_ABBREVIATIONS.items(), key=lambda a: -len(a[0])):
        text = re.sub(rf"(?<![\w.]){re.escape(abbreviation)}(?![\w])", spoken, text)
    for pattern, replace in _RULES:
        text = pattern.sub(replace, text)
    # what is left of slashes and of hyphens between words is spoken as a space
    text = text.replace("/", " ")
    text = re.sub(r"(?<=\w)-(?=\w)", " ", text)
    text = "".join(char if _allowed(char) else " " for char in text)
    previous = None
    while text != previous:  # tidy punctuation until stable, so normalising is idempotent
        previous = text
        text = re.sub(r"\s+", " ", text)
        text = re.sub(r"\s+([,.;:!?])", r"\1", text)
        text = re.sub(r"([,;:])(?:[,;:]\s*)+", r"\1 ", text)
        text = re.sub(r",([.!?])", r"\1", text)
        text = text.strip(" ,;:-")
    if not re.search(r"[^\W\d_]", text):
        return ""
    return text


_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def text_words(text: str) -> list[str]:
    """The spoken words of a normalised text, in order."""
    return _WORD.findall(text)


# ---------------------------------------------------------------------------- piper


_PIPER_SILENT = set("^$_ ") | set(".,;:!?'\"()-")


class PiperVoice:
    """A piper voice (``.onnx`` with its ``.onnx.json``), with phoneme alignments."""

    def __init__(self, model: Path | str, config: Path | str | None = None,
                 name: str | None = None) -> None:
        try:
            from piper import PiperVoice as Piper
        except ImportError as error:
            raise ImportError('piper is not installed: pip install "twin[tts]" '
                              "(piper-tts[alignment])") from error
        model = Path(model)
        self.name = name or model.stem
        self._piper = Piper.load(model, config_path=config, include_alignments=True)
        self.sample_rate = int(self._piper.config.sample_rate)
        self._warned = False

    def synthesize(self, text: str) -> Synthesis:
        spoken = normalize_text(text)
        if not spoken:
            return Synthesis(text="", pcm=b"", sample_rate=self.sample_rate)
        rate = self.sample_rate
        pcm: list[bytes] = []
        phonemes: list[PhonemeSpan] = []
        groups: list[tuple[float, float]] = []  # (start, end) of each spoken phoneme word
        offset = 0  # samples so far
        for chunk in self._piper.synthesize(spoken, include_alignments=True):
            audio = chunk.audio_int16_bytes
            samples = len(audio) // 2
            pcm.append(audio)
            alignment = [(a.phoneme, int(a.num_samples)) for a in chunk.phoneme_alignments or ()]
            if sum(n for _, n in alignment) != samples:
                if not self._warned:
                    log.warning("voice %s gives no phoneme alignments: timing is spread evenly",
                                self.name)
                    self._warned = True
                alignment = _spread(chunk.phonemes, samples)
            position = offset
            group_start: int | None = None
            group_end = 0
            for phoneme, count in alignment:
                phonemes.append(PhonemeSpan(phoneme, position / rate, count / rate))
                if phoneme in _PIPER_SILENT:
                    if group_start is not None and phoneme in " ^$,.;:!?":
                        groups.append((group_start / rate, group_end / rate))
                        group_start = None
                elif phoneme not in "ˈˌːˑ":
                    if group_start is None:
                        group_start = position
                    group_end = position + count
                position += count
            if group_start is not None:
                groups.append((group_start / rate, group_end / rate))
            offset += samples
        return Synthesis(text=spoken, pcm=b"".join(pcm), sample_rate=rate, phonemes=phonemes,
                         words=align_words(text_words(spoken), groups))


def align_words(words: list[str], groups: list[tuple[float, float]]
                ) -> list[tuple[str, float, float]]:
    """Words with times, from the (start, end) of the spoken word groups of the audio.

    Usually there is one group per word. espeak sometimes joins words ("with the" is one group)
    or splits one (an acronym spelled out); then words and groups are paired monotonically so
    each word's share of the letters best matches its groups' share of the time, and words that
    share a group share its time by letters.
    """
    if not words or not groups:
        return []
    if len(words) == len(groups):
        return [(w, s, e) for w, (s, e) in zip(words, groups, strict=True)]
    letters = [float(max(len(w), 1)) for w in words]
    times = [max(e - s, 1e-6) for s, e in groups]
    many, few = (letters, times) if len(words) > len(groups) else (times, letters)
    blocks = _partition(many, few)
    timed: list[tuple[str, float, float]] = []
    if len(words) > len(groups):
        for (first, last), (start, end) in zip(blocks, groups, strict=True):
            total = sum(letters[first:last])
            at = start
            for k in range(first, last):
                step = (end - start) * letters[k] / total
                timed.append((words[k], at, at + step))
                at += step
    else:
        for word, (first, last) in zip(words, blocks, strict=True):
            timed.append((word, groups[first][0], groups[last - 1][1]))
    return timed


def _partition(many: list[float], few: list[float]) -> list[tuple[int, int]]:
    """Split ``many`` into ``len(few)`` consecutive non-empty blocks whose shares of the total
    best match the shares of ``few`` (least squares); the blocks as (first, end) index pairs."""
    n, k = len(many), len(few)
    if n > 120:  # long texts: proportional cut, no search
        cuts = [round(n * sum(few[:j]) / sum(few)) for j in range(k + 1)]
        cuts = [min(max(c, j), n - k + j) for j, c in enumerate(cuts)]
        return list(itertools.pairwise(cuts))
    prefix = [0.0]
    for value in many:
        prefix.append(prefix[-1] + value / sum(many))
    want = [value / sum(few) for value in few]
    inf = float("inf")
    cost = [[inf] * (k + 1) for _ in range(n + 1)]
    back = [[0] * (k + 1) for _ in range(n + 1)]
    cost[0][0] = 0.0
    for j in range(1, k + 1):
        for i in range(j, n - (k - j) + 1):
            for start in range(j - 1, i):
                c = cost[start][j - 1] + (prefix[i] - prefix[start] - want[j - 1]) ** 2
                if c < cost[i][j]:
                    cost[i][j], back[i][j] = c, start
    blocks: list[tuple[int, int]] = []
    i = n
    for j in range(k, 0, -1):
        blocks.append((back[i][j], i))
        i = back[i][j]
    return blocks[::-1]


def _spread(phonemes: list[str], samples: int) -> list[tuple[str, int]]:
    """Phonemes spread evenly over ``samples`` (a voice without alignment output)."""
    if not phonemes:
        return [(PAUSE, samples)]
    share, rest = divmod(samples, len(phonemes))
    return [(p, share + (1 if i < rest else 0)) for i, p in enumerate(phonemes)]


# ---------------------------------------------------------------------------- espeak-ng


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p),
                ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """``espeak_EVENT`` of speak_lib.h."""

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_PHONEME_IPA = 0x0002
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_PHONEME = 7
_CHARS_UTF8 = 1
_ESPEAK_LOCK = threading.Lock()  # espeak-ng is one global engine per process
_ESPEAK: dict[str, Any] = {}


def _espeak_library() -> tuple[Any, int]:
    """The initialised espeak-ng library and its sample rate (once per process)."""
    if "lib" in _ESPEAK:
        return _ESPEAK["lib"], _ESPEAK["rate"]
    path: str = "libespeak-ng.so.1"
    data: bytes | None = None
    try:
        loader: Any = importlib.import_module("espeakng_loader")
        path = str(loader.get_library_path())
        data = str(loader.get_data_path()).encode()
    except ImportError:
        pass
    try:
        lib = ctypes.CDLL(path)
    except OSError as error:
        raise ImportError(f"espeak-ng is not installed ({error}): apt-get install espeak-ng "
                          "(libespeak-ng1) or pip install espeakng-loader") from error
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_Synth.restype = ctypes.c_int
    if data is not None:
        # espeakng-loader hands the data folder itself; espeak wants the folder holding it
        data = str(Path(data.decode()).parent).encode()
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data,
                                 _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA)
    if rate <= 0:
        raise RuntimeError(f"espeak-ng failed to initialise ({path}, data {data!r})")
    _ESPEAK.update(lib=lib, rate=rate)
    return lib, rate


class EspeakVoice:
    """espeak-ng through its C library: audio with phoneme and word events."""

    def __init__(self, language: str = "en-us") -> None:
        self._lib, self.sample_rate = _espeak_library()
        self.language = language
        self.name = f"espeak-ng:{language}"
        with _ESPEAK_LOCK:
            if self._lib.espeak_SetVoiceByName(language.encode()) != 0:
                raise ValueError(f"espeak-ng has no voice {language!r}")

    def synthesize(self, text: str) -> Synthesis:
        spoken = normalize_text(text)
        if not spoken:
            return Synthesis(text="", pcm=b"", sample_rate=self.sample_rate)
        chunks: list[bytes] = []
        events: list[tuple[int, int, int, int, str]] = []  # type, sample, position, length, id

        def collect(wav: Any, count: int, event: Any) -> int:
            if wav and count > 0:
                chunks.append(ctypes.string_at(wav, count * 2))
            i = 0
            while event[i].type != _EVENT_LIST_TERMINATED:
                e = event[i]
                if e.type in (_EVENT_WORD, _EVENT_PHONEME):
                    name = bytes(e.id.string).split(b"\0")[0].decode("utf-8", "replace") \
                        if e.type == _EVENT_PHONEME else ""
                    events.append((e.type, e.sample, e.text_position, e.length, name))
                i += 1
            return 0

        callback = _CALLBACK(collect)
        encoded = spoken.encode("utf-8")
        with _ESPEAK_LOCK:
            self._lib.espeak_SetVoiceByName(self.language.encode())
            self._lib.espeak_SetSynthCallback(callback)
            status = self._lib.espeak_Synth(encoded, len(encoded) + 1, 0, 0, 0, _CHARS_UTF8,
                                            None, None)
        if status != 0:
            raise RuntimeError(f"espeak-ng could not speak {spoken!r} (error {status})")
        pcm = b"".join(chunks)
        total = len(pcm) // 2
        return Synthesis(text=spoken, pcm=pcm, sample_rate=self.sample_rate,
                         phonemes=self._phonemes(events, total),
                         words=self._words(spoken, events, total))

    def _phonemes(self, events: list[tuple[int, int, int, int, str]],
                  total: int) -> list[PhonemeSpan]:
        marks = [(min(max(sample, 0), total), name or PAUSE)
                 for kind, sample, _, _, name in events if kind == _EVENT_PHONEME]
        if not marks or marks[0][0] > 0:
            marks.insert(0, (0, PAUSE))
        spans: list[PhonemeSpan] = []
        rate = self.sample_rate
        for (start, name), (end, _) in zip(marks, [*marks[1:], (total, "")], strict=True):
            if end > start:
                spans.append(PhonemeSpan(name, start / rate, (end - start) / rate))
        return spans

    def _words(self, spoken: str, events: list[tuple[int, int, int, int, str]],
               total: int) -> list[tuple[str, float, float]]:
        # A word event marks where espeak starts a word; it ends at the next word or pause.
        rate = self.sample_rate
        groups: list[tuple[float, float]] = []
        for i, (kind, sample, _, _, _) in enumerate(events):
            if kind != _EVENT_WORD:
                continue
            end = next((s for k, s, _, _, name in events[i + 1:]
                        if k == _EVENT_WORD or (k == _EVENT_PHONEME and not name)), total)
            groups.append((sample / rate, max(end, sample) / rate))
        return align_words(text_words(spoken), groups)


# ---------------------------------------------------------------------------- choosing a voice


ESPEAK_NAMES = ("espeak", "espeak-ng")


def load_voice(voice: str = "piper-joe-medium", *, fallback: bool = True) -> Voice:
    """The voice named ``voice``: a model registry name, a path to a piper ``.onnx`` file, or
    ``espeak-ng[:language]``.

    When the piper voice (or piper itself) is absent: with ``fallback`` the espeak-ng voice, with
    a logged warning; without it ``twin.models.ModelMissing`` (which names the ``twin models
    fetch`` command), ``ModelError`` for a missing file, ``ImportError`` for a missing piper.
    """
    from twin import models

    base, _, language = voice.partition(":")
    if base in ESPEAK_NAMES:
        return EspeakVoice(language or "en-us")
    try:
        if voice in models.REGISTRY:
            folder = models.model_path(voice)
            onnx = sorted(folder.glob("*.onnx"))
            if not onnx:
                raise models.ModelError(f"model {voice!r} has no .onnx voice in {folder}")
            return PiperVoice(onnx[0], name=voice)
        path = Path(voice).expanduser()
        if not path.is_file():
            known = ", ".join(n for n, s in models.REGISTRY.items() if s.kind == "tts")
            raise models.ModelError(f"no voice file {path} (known voices: {known}, espeak-ng)")
        return PiperVoice(path)
    except (models.ModelError, ImportError) as error:
        if not fallback:
            raise
        log.warning("voice %r unavailable (%s); speaking with espeak-ng instead", voice, error)
        return EspeakVoice()
