"""Chat models for the dialogue, chosen by config: a local GGUF model, an OpenAI-compatible
server, or Ollama — all LangChain chat models, so the dialogue's chain is the same for each.

- ``llamacpp`` (default): ``ChatLlamaCpp`` over a GGUF file from the model registry
  (``smollm2-135m-instruct``) or a path; runs in this process, threads set explicitly;
- ``openai``: ``ChatOpenAI(base_url=...)`` — a llama.cpp server (``python -m llama_cpp.server``),
  vLLM, or any OpenAI-compatible endpoint;
- ``ollama``: ``ChatOllama`` against an Ollama server.

``split_sentences`` turns a stream of text chunks into complete sentences as soon as each ends,
so the first sentence can be spoken while the model writes the rest. ``TokenOdds`` keeps how
sure a local model was of each token it wrote, so a value it guessed can be told from one it read.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from twin.files import FILE_MODE, private_dir


class ChatSettings(BaseModel):
    """Which chat model the dialogue uses, and its generation limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["llamacpp", "openai", "ollama"] = "llamacpp"
    model: str = Field("qwen2.5-coder-1.5b-instruct", description="llamacpp: a registry name or a "
                       ".gguf path; openai/ollama: the server's model name")
    base_url: str | None = Field(None, description="openai/ollama: the server's address")
    api_key_env: str = Field("OPENAI_API_KEY", description="openai: environment variable "
                             "holding the key (a local server accepts any)")
    max_tokens: int = Field(160, ge=8, le=1024)
    temperature: float = Field(0.0, ge=0, le=2, description="0: the most likely words (facts "
                               "read back as written)")
    repeat_penalty: float = Field(1.0, ge=1, le=2, description="llamacpp: above 1 penalises "
                                  "tokens already in the prompt: the notes' own figures too")
    n_threads: int = Field(2, ge=1, description="llamacpp: threads that write the reply")
    n_threads_batch: int | None = Field(None, ge=1, description="llamacpp: threads that read "
                                        "the prompt (default: n_threads)")
    n_ctx: int = Field(12288, ge=256, description="llamacpp: the context in tokens (the mission's "
                       "notes are read whole into the prompt when they fit)")
    timeout_s: float = Field(30.0, gt=0, description="a whole reply; then the grounded fallback")


def chat_model(settings: ChatSettings) -> Any:
    """The LangChain chat model the settings name (blocking: loads a local model)."""
    if settings.backend == "llamacpp":
        # llama.cpp's OpenMP threads spin while they wait; beside the other actors on two cores
        # that costs more than it gains (measured here: 2.7 tokens/s spinning against 6.3
        # passive with one core busy; 12.4 against 9.5 on an idle machine). Read when the
        # library loads, so before the import; a user's own setting wins.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from langchain_community.chat_models import ChatLlamaCpp

        return ChatLlamaCpp(
            model_path=str(gguf_path(settings.model)), n_ctx=settings.n_ctx,
            n_threads=settings.n_threads, n_batch=256, max_tokens=settings.max_tokens,
            model_kwargs={"n_threads_batch": settings.n_threads_batch or settings.n_threads},
            temperature=settings.temperature, repeat_penalty=settings.repeat_penalty, top_p=0.9,
            # 0: the model's own RoPE (ChatLlamaCpp's 10000 breaks long prompts on Qwen2.5,
            # whose base is 1e6, and on SmolLM2)
            rope_freq_base=0.0, rope_freq_scale=0.0,
            streaming=True, verbose=False)
    if settings.backend == "openai":
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(
            model=settings.model, base_url=settings.base_url,
            api_key=os.environ.get(settings.api_key_env, "not-needed"),
            max_completion_tokens=settings.max_tokens, temperature=settings.temperature,
            timeout=settings.timeout_s, streaming=True)
    from langchain_ollama import ChatOllama

    return ChatOllama(model=settings.model, base_url=settings.base_url,
                      num_predict=settings.max_tokens, temperature=settings.temperature)


def gguf_path(model: str) -> Path:
    """A GGUF file: the registry's model, or a path."""
    from twin import models

    path = models.locate(model, kind="llm", accept=lambda file: file.suffix == ".gguf"
                         and file.is_file(), expected="a .gguf file")
    if path.is_file():
        return path
    files = sorted(path.glob("*.gguf"))  # a registry model's folder
    if not files:
        raise models.ModelError(f"model {model!r} has no .gguf file in {path}")
    return files[0]


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z0-9\"'(])")
# where a long sentence may be cut for the voice, best first: a list's items, a colon, a comma
_CLAUSE_ENDS = (re.compile(r"(?<=;)\s+"), re.compile(r"(?<=:)\s+"), re.compile(r"(?<=,)\s+"))


async def split_sentences(chunks: AsyncIterator[str], *, min_chars: int = 12,
                          long_chars: int = 120, first_long_chars: int = 60
                          ) -> AsyncIterator[str]:
    """Complete sentences from streamed text, each as soon as the next one begins. A sentence
    that runs past ``long_chars`` (a list read out as one, a clause after clause) goes out in
    parts, cut after its last semicolon, colon or comma so far: the voice need not wait for its
    end, nor the operator for the voice. The reply's first sentence is cut so once past
    ``first_long_chars``: the operator hears its first clause while the model writes the rest
    (on 2 cores a model in a session writes 8-15 tokens a second, so a 30-token first sentence
    would hold the voice for 2-4 s)."""
    buffer = ""
    first = True
    async for chunk in chunks:
        buffer += chunk
        while True:
            match = _SENTENCE_END.search(buffer, min_chars)
            limit = first_long_chars if first else long_chars
            if match is not None:
                sentence, buffer = buffer[: match.start()].strip(), buffer[match.end():]
            elif len(buffer) > limit and (cut := _clause_end(buffer, min_chars)):
                sentence, buffer = buffer[:cut].strip(), buffer[cut:]
            else:
                break
            if sentence:
                first = False
                yield sentence
    if buffer.strip():
        yield buffer.strip()


_MARKUP = re.compile(r"(?m)^\s*(?:[-*•]|#+|\d+[.)])(?:\s+|$)|\*\*|__|`")


def plain_speech(sentence: str) -> str:
    """``sentence`` as it is to be said: without the list markers, headings and emphasis a
    model writes although told not to, its lines joined."""
    return " ".join(_MARKUP.sub("", sentence).split())


def _clause_end(text: str, min_chars: int) -> int | None:
    """Where the last clause of ``text`` ends (after ``min_chars``), or ``None``."""
    for clause_end in _CLAUSE_ENDS:
        ends = [m.end() for m in clause_end.finditer(text, min_chars)]
        if ends:
            return ends[-1]
    return None


class TokenOdds:
    """How sure a local model was of each token it wrote: a llama.cpp logits processor (passed
    as ``logits_processor``) that keeps, for every token generated, the probability the model
    gave it. A value read from the prompt is copied with a probability near 1; a value the model
    guesses (a name it was never given, a figure it makes up) shows as a token it thought less
    likely than all the others together (measured on the 1.5B model over the shipped and held-out
    questions: 11 of the 15 values it wrote below 0.5, not given by the question, were wrong;
    the values it read back right were nearly all at 0.9 and above).

    The odds do not tell a right guess from a wrong one (on the shipped questions the right
    values among those below 0.5 were no likelier than the wrong ones), so a guess is said as
    one, not dropped. The processor sees the scores before each token is chosen; the token
    chosen is the last of the input at the next call, so the last token written is never
    scored (it ends the reply).
    """

    def __init__(self, detokenize: Callable[[list[int]], bytes]) -> None:
        self._detokenize = detokenize
        self._last: Any = None  # the probabilities of the step before
        self.tokens: list[tuple[str, float]] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import numpy as np

        if self._last is not None and len(input_ids):
            chosen = int(input_ids[-1])
            piece = self._detokenize([chosen]).decode("utf-8", errors="ignore")
            self.tokens.append((piece, float(self._last[chosen])))
        shifted = np.exp(scores - np.max(scores))
        self._last = shifted / shifted.sum()
        return scores

    def least(self, phrase: str) -> float | None:
        """The lowest probability among the tokens that wrote the first ``phrase`` of the reply,
        or ``None`` if the reply so far does not hold it (or it is not scored yet)."""
        text, spans = "", []
        for piece, odds in list(self.tokens):
            spans.append((len(text), len(text) + len(piece), odds))
            text += piece
        start = text.find(phrase)
        if start < 0:
            return None
        end = start + len(phrase)
        inside = [odds for first, last, odds in spans if first < end and last > start]
        return min(inside) if inside else None

    def guesses(self, phrases: Sequence[str], floor: float, *, given: str = ""
                ) -> list[tuple[str, float]]:
        """The ``phrases`` written with a token below ``floor``, each with that probability. A
        phrase in ``given`` (the question, what the reply said before) is no guess, however the
        model hesitated to begin with it."""
        found = []
        for phrase in phrases:
            if phrase.lower() in given.lower():
                continue
            odds = self.least(phrase)
            if odds is not None and odds < floor:
                found.append((phrase, odds))
        return found


class PrefixCache:
    """The state of a local model that has read a prompt's stable prefix, kept on disk.

    Reading a whole mission takes a 1.5B model tens of seconds on two cores; a session (or a
    restarted Dialogue) with the same model, context and prefix loads the state back in about a
    second instead (llama.cpp's state file: the KV cache and its tokens). Keyed by the model
    file, ``n_ctx`` and the prefix text; the ``keep`` newest files are kept. The state holds
    the prompt (the mission and its notes): its files are its owner's only (0600, the folder
    0700 when made here).
    """

    def __init__(self, folder: Path | None = None, *, keep: int = 6) -> None:
        self.folder = folder or Path(os.environ.get("TWIN_CACHE", Path.home() / ".cache" /
                                                    "twin")) / "prefix"
        self.keep = keep

    def path(self, llm: Any, prefix: str) -> Path:
        import hashlib

        model = Path(llm.model_path)
        stat = model.stat()
        digest = hashlib.sha256(
            f"{model.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{llm.n_ctx()}|"
            f"{llm.context_params.rope_freq_base}|{prefix}"
            .encode()).hexdigest()[:32]
        return self.folder / f"{digest}.llama-state"

    def load(self, llm: Any, prefix: str) -> bool:
        """Put the saved state for ``prefix`` into ``llm``; False if there is none (or it does
        not load: then ``llm`` is reset and reads the prefix itself)."""
        import ctypes

        import llama_cpp

        path = self.path(llm, prefix)
        if not path.is_file():
            return False
        capacity = llm.n_ctx()
        tokens = (llama_cpp.llama_token * capacity)()
        count = ctypes.c_size_t()
        if not llama_cpp.llama_state_load_file(llm.ctx, str(path).encode(), tokens, capacity,
                                               ctypes.byref(count)):
            llm.reset()
            return False
        n = int(count.value)
        llm.input_ids[:n] = tokens[:n]
        llm.n_tokens = n
        os.utime(path)  # the newest are kept
        return True

    def save(self, llm: Any, prefix: str) -> Path:
        """Save ``llm``'s state (what it has read, the prefix first) for ``prefix``."""
        import llama_cpp

        private_dir(self.folder)  # the state holds the prompt: the mission and its notes
        path = self.path(llm, prefix)
        n = int(llm.n_tokens)
        tokens = (llama_cpp.llama_token * n)(*llm.input_ids[:n].tolist())
        partial = path.with_suffix(".partial")
        if not llama_cpp.llama_state_save_file(llm.ctx, str(partial).encode(), tokens, n):
            partial.unlink(missing_ok=True)
            raise OSError(f"llama.cpp could not save its state to {partial}")
        os.chmod(partial, FILE_MODE)
        os.replace(partial, path)
        saved = sorted(self.folder.glob("*.llama-state"), key=lambda p: p.stat().st_mtime)
        for old in saved[: max(0, len(saved) - self.keep)]:
            old.unlink(missing_ok=True)
        return path
