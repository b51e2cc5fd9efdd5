"""Mission knowledge: the notes chunked into standalone passages, embedded, and searched by meaning.

A library module (not an actor): the Dialogue actor builds one :class:`Knowledge` per session from
the mission's notes, and :class:`twin.mind.Mind` searches it per question and adds reports that
arrive during the mission (``Knowledge.add``).

- :func:`chunk_markdown` splits a note (markdown, or YAML read as text) by headings, paragraphs,
  list items and table rows, packs neighbours under the same heading up to ``max_chars``, and
  prefixes every passage with its heading path so that it stands alone (a table row is written as
  ``"BULLDOG 3: Tank 380 L; Fuel at 0630 68 % (258 L); ..."``). Ids are ``<note stem>#<n>``.
- :class:`Knowledge` embeds passages with all-MiniLM-L6-v2 (sentence-transformers, CPU, offline)
  into an in-memory matrix; :meth:`Knowledge.search` ranks by cosine similarity plus a light
  lexical boost for the query's exact tokens (numbers, grids, frequencies and the upper-case names
  of the notes: callsigns, checkpoints, codewords), weighted by how rare each token is in the
  notes. ``tests/models/test_knowledge.py`` measures both with and without the boost.
- Passages that read like prompt injection ("ignore your previous instructions", "you are now",
  "system prompt", ...: ``twin.mind.INJECTION_PATTERNS``) are never indexed: they are listed in
  :attr:`Knowledge.suspicious`.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from twin.mind import INJECTION_PATTERNS, looks_injected

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["INJECTION_PATTERNS", "Knowledge", "Passage", "chunk_markdown", "looks_injected"]


@dataclass(frozen=True)
class Passage:
    """A standalone piece of mission knowledge: ``id`` like ``"route_copper#3"``."""

    id: str
    source: str
    text: str


# ------------------------------------------------------------------------------------ chunking

_HEADING_RE = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET_RE = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_TABLE_RULE_RE = re.compile(r"^\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_SENTENCE_END_RE = re.compile(r"(?<=[.;!?])\s+")


@dataclass
class _Unit:
    heading: tuple[str, ...]
    kind: str  # "paragraph", "item", "row"
    text: str


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _row_text(header: list[str], cells: list[str]) -> str:
    """A table row as one line that stands alone: ``"key: header2 value2; header3 value3"``."""
    if not header or len(header) != len(cells):
        return " | ".join(cell for cell in cells if cell)
    key, rest = cells[0], list(zip(header[1:], cells[1:], strict=True))
    if len(rest) == 1:
        return f"{key}: {rest[0][1]}"
    return f"{key}: " + "; ".join(f"{name} {value}" for name, value in rest if value)


def _units(text: str) -> list[_Unit]:
    """Headings set the path; paragraphs, list items (with their continuation lines) and table
    rows become units under it."""
    units: list[_Unit] = []
    path: list[tuple[int, str]] = []
    current: list[str] = []
    kind = "paragraph"
    header: list[str] = []

    def heading() -> tuple[str, ...]:
        return tuple(title for _, title in path)

    def flush() -> None:
        nonlocal current
        body = " ".join(line.strip() for line in current if line.strip())
        if body:
            units.append(_Unit(heading(), kind, body))
        current = []

    for raw in text.splitlines():
        line = raw.rstrip()
        match = _HEADING_RE.match(line)
        if match:
            flush()
            level = len(match.group(1))
            path = [(lvl, title) for lvl, title in path if lvl < level]
            path.append((level, match.group(2)))
            header = []
            continue
        if not line.strip():
            flush()
            header = []
            continue
        if line.lstrip().startswith("|"):
            flush()
            if _TABLE_RULE_RE.match(line.strip()):
                continue
            cells = _cells(line)
            if not header:
                header = cells
                continue
            kind = "row"
            current = [_row_text(header, cells)]
            flush()
            continue
        if _BULLET_RE.match(line):
            flush()
            kind = "item"
            # "- item" loses its dash; "3. item" keeps its number (the 9-line report's lines)
            current = [re.sub(r"^\s*[-*+]\s+", "", line).strip()]
            continue
        if not current:
            kind = "paragraph"
        current.append(line)
    flush()
    return units


def _split_long(text: str, limit: int) -> list[str]:
    """Split ``text`` at sentence ends (then at spaces) into pieces of at most ``limit`` chars."""
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END_RE.split(text):
        while len(sentence) > limit:
            cut = sentence.rfind(" ", 0, limit)
            cut = cut if cut > 0 else limit
            head, sentence = sentence[:cut], sentence[cut:].lstrip()
            if current:
                pieces.append(current)
                current = ""
            pieces.append(head)
        if current and len(current) + 1 + len(sentence) > limit:
            pieces.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    if current:
        pieces.append(current)
    return pieces


def chunk_markdown(text: str, source: str, max_chars: int = 400) -> list[Passage]:
    """Standalone passages of a markdown (or YAML, read as text) note.

    Units under the same heading are packed into even groups of at most ``max_chars`` (of body
    text; a table does not share a passage with prose), longer units are split at sentence ends,
    and every passage starts with its heading path (``"MSR COPPER > Checkpoints: ..."``, the
    note's first heading shortened to its part before a colon). Ids are ``f"{source}#{n}"`` from 0.
    """
    passages: list[Passage] = []
    group: list[_Unit] = []

    def prefix(heading: tuple[str, ...]) -> str:
        parts = list(heading)
        if parts and len(parts) > 1:
            parts[0] = parts[0].split(":")[0].strip()
        return " > ".join(parts)

    def emit() -> None:
        if not group:
            return
        body = " ".join(
            unit.text if unit.text.endswith((".", ":", ";", "!", "?")) else unit.text + "."
            for unit in group
        )
        head = prefix(group[0].heading)
        for piece in _split_long(body, max_chars):
            text = f"{head}: {piece}" if head else piece
            passages.append(Passage(id=f"{source}#{len(passages)}", source=source, text=text))
        group.clear()

    sections: list[list[_Unit]] = []
    for unit in _units(text):
        last = sections[-1][-1] if sections else None
        if last and last.heading == unit.heading and (last.kind == "row") == (unit.kind == "row"):
            sections[-1].append(unit)
        else:
            sections.append([unit])
    for section in sections:
        # Even groups: ceil(total / max_chars) of them, so no tiny leftover passage.
        total = sum(len(unit.text) + 1 for unit in section)
        target = total / math.ceil(total / max_chars)
        for unit in section:
            size = sum(len(u.text) + 1 for u in group)
            if group and (size >= target or size + len(unit.text) > max_chars):
                emit()
            group.append(unit)
        emit()
    emit()
    return passages


# ------------------------------------------------------------------------------------- index

_TOKEN_RE = re.compile(r"[A-Za-z0-9]+(?:\.[0-9]+)?")
_NAME_RE = re.compile(r"\b[A-Z][A-Z0-9]{2,}\b")


def _tokens(text: str) -> list[str]:
    return [token.lower() for token in _TOKEN_RE.findall(text)]


def resolve_model(model: str) -> Path:
    """A local sentence-transformers folder for ``model``: a registry name or a folder."""
    from twin import models

    return models.locate(model, kind="embedding",
                         accept=lambda folder: (folder / "modules.json").is_file(),
                         expected="a local sentence-transformers folder")


class Knowledge:
    """An in-memory vector index of mission knowledge (all-MiniLM-L6-v2 by default).

    ``search`` returns ``(passage, score)`` best first; the score is the cosine similarity plus
    the lexical boost (at most ``lexical_boost``), capped at 1.0.
    """

    def __init__(
        self,
        model: str = "all-minilm-l6-v2",
        *,
        max_chars: int = 400,
        lexical_boost: float = 0.2,
        batch_size: int = 32,
        threads: int | None = 1,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        folder = resolve_model(model)
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise RuntimeError(
                "sentence-transformers is not installed: pip install sentence-transformers"
            ) from None
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        self.model: SentenceTransformer = SentenceTransformer(str(folder), device="cpu")
        self.max_chars = max_chars
        self.lexical_boost = lexical_boost
        self.batch_size = batch_size
        self.passages: list[Passage] = []
        self.suspicious: list[Passage] = []
        dim = self.model.get_embedding_dimension() or 384
        self._vectors: npt.NDArray[np.float32] = np.zeros((0, dim), np.float32)
        self._token_sets: list[set[str]] = []
        self._df: Counter[str] = Counter()
        self._names: set[str] = set()  # upper-case names of the notes, lower-cased
        self._added: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self.passages)

    # -------------------------------------------------------------- building

    def add_documents(self, paths: Iterable[Path]) -> int:
        """Chunk and embed notes (markdown or YAML); returns the number of passages indexed."""
        passages: list[Passage] = []
        for path in paths:
            path = Path(path)
            passages += chunk_markdown(path.read_text(encoding="utf-8"), path.stem, self.max_chars)
        return self._index(passages)

    def add(self, text: str, source: str) -> Passage:
        """Index one report that arrived during the mission (longer ones are split; the first
        passage is returned). Its id is ``<source slug>#<n>``."""
        slug = re.sub(r"[^a-z0-9]+", "_", source.lower()).strip("_") or "report"
        pieces = chunk_markdown(text, slug, self.max_chars) or [Passage("", slug, text.strip())]
        passages = []
        for piece in pieces:
            passages.append(Passage(f"{slug}#{self._added[slug]}", source, piece.text))
            self._added[slug] += 1
        self._index(passages)
        return passages[0]

    def _index(self, passages: Sequence[Passage]) -> int:
        clean = []
        for passage in passages:
            if looks_injected(passage.text):
                self.suspicious.append(passage)
            else:
                clean.append(passage)
        if not clean:
            return 0
        vectors = self._embed([p.text for p in clean])
        self._vectors = np.vstack([self._vectors, vectors])
        for passage in clean:
            tokens = set(_tokens(passage.text))
            self._token_sets.append(tokens)
            self._df.update(tokens)
            self._names.update(name.lower() for name in _NAME_RE.findall(passage.text))
        self.passages.extend(clean)
        return len(clean)

    def _embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        vectors: Any = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)

    # -------------------------------------------------------------- searching

    def _key_tokens(self, query: str) -> list[str]:
        """The query's exact tokens: numbers and the notes' upper-case names."""
        return [t for t in dict.fromkeys(_tokens(query)) if any(c.isdigit() for c in t)
                or t in self._names]

    def _boosts(self, query: str) -> npt.NDArray[np.float32]:
        """Per passage: ``lexical_boost`` x the summed rarity (idf / the idf of a token found in
        one passage) of the query's exact tokens it contains, at most 1: a grid or a codeword
        found in one passage earns the full boost, "BULLDOG" or "2" little."""
        boosts = np.zeros(len(self.passages), np.float32)
        keys = self._key_tokens(query)
        if not keys or self.lexical_boost <= 0:
            return boosts
        total = len(self.passages)
        rarest = math.log((1 + total) / 2)
        if rarest <= 0:
            return boosts
        idf = {t: math.log((1 + total) / (1 + self._df[t])) / rarest for t in keys}
        for i, tokens in enumerate(self._token_sets):
            matched = sum(weight for token, weight in idf.items() if token in tokens)
            boosts[i] = self.lexical_boost * min(1.0, matched)
        return boosts

    def search(self, query: str, k: int = 4) -> list[tuple[Passage, float]]:
        """The ``k`` passages nearest to ``query``, best first, with their scores."""
        if not self.passages or not query.strip() or k <= 0:
            return []
        vector = self._embed([query])[0]
        scores = self._vectors @ vector + self._boosts(query)
        order = np.argsort(-scores, kind="stable")[:k]
        return [(self.passages[i], float(min(1.0, scores[i]))) for i in order]
