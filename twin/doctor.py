"""What ``twin doctor`` checks: Python, packages, models, Ray, microphones and cameras.

:func:`checks` returns plain data (a list of :class:`Check`); the CLI prints it. Nothing here
imports a heavy package: versions come from :mod:`importlib.metadata`, presence from
:func:`importlib.util.find_spec`, and anything that must really run (starting Ray, listing
PyAudio devices) runs in a subprocess with a timeout, so a broken install cannot hang or crash
the doctor itself.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.metadata
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from twin import models

RAY_TIMEOUT_S = 60.0
AUDIO_TIMEOUT_S = 20.0
RAY_OBJECT_STORE_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    area: str
    name: str
    ok: bool
    detail: str
    hint: str = ""


@dataclass(frozen=True)
class _Package:
    module: str
    dists: tuple[str, ...]
    hint: str


_REQUIRED: tuple[_Package, ...] = (
    _Package("msgspec", ("msgspec",), "pip install -e ."),
    _Package("pydantic", ("pydantic",), "pip install -e ."),
    _Package("yaml", ("PyYAML",), "pip install -e ."),
    _Package("typer", ("typer",), "pip install -e ."),
    _Package("ray", ("ray",), "pip install -e '.[ray]'"),
)

_OPTIONAL: tuple[_Package, ...] = (
    _Package("faster_whisper", ("faster-whisper",), "pip install -e '.[audio]'"),
    _Package("mediapipe", ("mediapipe",), "pip install -e '.[vision]'"),
    _Package("ai_edge_litert", ("ai-edge-litert",), "pip install -e '.[vision]'"),
    _Package("llama_cpp", ("llama-cpp-python",), "pip install -e '.[llm]'  (builds ~5 min)"),
    _Package("langchain", ("langchain",), "pip install -e '.[llm]'"),
    _Package("piper", ("piper-tts",), "pip install -e '.[tts]'"),
    _Package("nade", ("nade",), "pip install -e '.[emotion]'"),
    _Package("vaderSentiment", ("vaderSentiment",), "pip install -e '.[emotion]'"),
    _Package("librosa", ("librosa",), "pip install -e '.[emotion]'"),
    _Package(
        "pyaudio",
        ("PyAudio", "pyaudio"),
        "apt-get install portaudio19-dev && pip install -e '.[audio]'",
    ),
    _Package(
        "cv2",
        (
            "opencv-python",
            "opencv-python-headless",
            "opencv-contrib-python",
            "opencv-contrib-python-headless",
        ),
        "pip install -e '.[vision]'",
    ),
    _Package("fastapi", ("fastapi",), "pip install -e '.[avatar]'"),
    _Package("uvicorn", ("uvicorn",), "pip install -e '.[avatar]'"),
    _Package("playwright", ("playwright",), "pip install -e '.[dev]'  (browser tests)"),
)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _version(package: _Package) -> str:
    for dist in package.dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "version unknown"


def _python_check() -> Check:
    version = ".".join(str(part) for part in sys.version_info[:3])
    ok = sys.version_info >= (3, 11)
    return Check(
        "python",
        "python",
        ok,
        f"Python {version} at {sys.executable}",
        "" if ok else "twin needs Python >= 3.11",
    )


def _package_check(package: _Package, *, required: bool) -> Check:
    label = "required" if required else "optional"
    if _installed(package.module):
        return Check("packages", package.module, True, f"{_version(package)} ({label})")
    return Check("packages", package.module, False, f"not installed ({label})", package.hint)


def _model_checks() -> list[Check]:
    result: list[Check] = []
    root = models.models_dir()
    for name, spec in models.REGISTRY.items():
        state = models.status(name)
        megabytes = sum(f.size for f in spec.files) / 1e6
        detail = f"{state}: {spec.kind}, {megabytes:.1f} MB, {root / name}"
        hint = ""
        if state == "missing":
            hint = f"twin models fetch {name}"
        elif state == "corrupt":
            hint = f"twin models fetch --force {name}"
        result.append(Check("models", name, state == "present", detail, hint))
    result.append(_vad_check())
    return result


def _vad_check() -> Check:
    """Silero VAD ships inside faster-whisper; find the asset without importing the package."""
    name = "silero-vad"
    try:
        spec = importlib.util.find_spec("faster_whisper")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return Check(
            "models", name, False, "faster-whisper not installed", "pip install -e '.[audio]'"
        )
    for location in spec.submodule_search_locations:
        assets = sorted(Path(location, "assets").glob("silero_vad*.onnx"))
        if assets:
            return Check("models", name, True, f"present: {assets[-1]}")
    return Check(
        "models", name, False, "no silero_vad*.onnx in faster-whisper's assets",
        "pip install --force-reinstall faster-whisper",
    )  # fmt: skip


def _run(code: str, timeout: float) -> tuple[int | None, str, str]:
    """Run ``code`` in a fresh interpreter in its own process group; kill the group on timeout.

    Returns (exit code or None on timeout, stdout, stderr).
    """
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM first so Ray's own processes can take their workers down with them.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        return None, out, err
    return proc.returncode, out, err


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


_RAY_SCRIPT = f"""
import json, time
import ray
t0 = time.monotonic()
ray.init(address="local", num_cpus=1, include_dashboard=False,
         object_store_memory={RAY_OBJECT_STORE_BYTES}, logging_level="ERROR")
t1 = time.monotonic()
ray.shutdown()
t2 = time.monotonic()
print(json.dumps({{"init_s": t1 - t0, "shutdown_s": t2 - t1, "version": ray.__version__}}))
"""


def _ray_check() -> Check:
    if not _installed("ray"):
        return Check("ray", "local ray", False, "ray not installed", "pip install -e '.[ray]'")
    started = time.monotonic()
    code, out, err = _run(_RAY_SCRIPT, RAY_TIMEOUT_S)
    elapsed = time.monotonic() - started
    if code is None:
        return Check(
            "ray", "local ray", False,
            f"ray.init did not finish within {RAY_TIMEOUT_S:g} s",
            "check `ray status`, free memory and /tmp/ray/session_latest/logs",
        )  # fmt: skip
    if code != 0:
        return Check(
            "ray", "local ray", False,
            f"ray.init failed (exit {code}): {_last_line(err) or 'no output'}",
            "see /tmp/ray/session_latest/logs",
        )  # fmt: skip
    try:
        report = json.loads(_last_line(out))
        detail = (
            f"ray {report['version']}: init {report['init_s']:.1f} s, "
            f"shutdown {report['shutdown_s']:.1f} s ({elapsed:.1f} s with interpreter start)"
        )
    except (ValueError, KeyError, TypeError):
        detail = f"started and stopped in {elapsed:.1f} s"
    return Check("ray", "local ray", True, detail)


_PYAUDIO_SCRIPT = """
import json, os, sys
devnull = os.open(os.devnull, os.O_WRONLY)
os.dup2(devnull, 2)  # ALSA and PortAudio chatter
import pyaudio
pa = pyaudio.PyAudio()
try:
    found = []
    for i in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(i)
        if int(info.get("maxInputChannels", 0)) > 0:
            found.append(f"{i}: {info.get('name')} ({int(info.get('defaultSampleRate', 0))} Hz)")
finally:
    pa.terminate()
print(json.dumps(found))
"""


def _asound_cards() -> list[str]:
    cards = Path("/proc/asound/cards")
    try:
        text = cards.read_text()
    except OSError:
        return []
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and line[:1] != " " and "no soundcards" not in line
    ]


def _audio_check() -> Check:
    no_mic_hint = "no microphone: use a wav file or the scripted operator as the audio source"
    if _installed("pyaudio"):
        code, out, _err = _run(_PYAUDIO_SCRIPT, AUDIO_TIMEOUT_S)
        if code is None:
            return Check("audio", "microphones", False, "PyAudio device listing hung", no_mic_hint)
        if code != 0:
            return Check("audio", "microphones", False, "PyAudio failed to start", no_mic_hint)
        try:
            devices = [str(d) for d in json.loads(_last_line(out))]
        except ValueError:
            devices = []
        if devices:
            return Check("audio", "microphones", True, "; ".join(devices))
        return Check("audio", "microphones", False, "PyAudio sees no input device", no_mic_hint)
    cards = _asound_cards()
    hint = "apt-get install portaudio19-dev && pip install -e '.[audio]'"
    if cards:
        return Check(
            "audio", "microphones", False, f"PyAudio not installed; ALSA cards: {'; '.join(cards)}",
            hint,
        )  # fmt: skip
    return Check(
        "audio", "microphones", False, "PyAudio not installed; no sound card found", no_mic_hint
    )


def _camera_name(device: str) -> str:
    """The V4L2 name of ``/dev/videoN`` (what `twin run --camera NAME` matches), or ''."""
    try:
        return Path(f"/sys/class/video4linux/{Path(device).name}/name").read_text().strip()
    except OSError:
        return ""


def _camera_check() -> Check:
    devices = sorted(glob.glob("/dev/video*"))
    if devices:
        named = [f"{device} ({_camera_name(device)})" if _camera_name(device) else device
                 for device in devices]
        return Check("camera", "cameras", True, ", ".join(named))
    return Check(
        "camera", "cameras", False, "no /dev/video* device",
        "no camera: watch a recording instead with `twin run MISSION --video FILE`",
    )  # fmt: skip


def _browser_check() -> Check:
    """Debian's chromium: the avatar page in the browser tests and `twin bench avatar` (found
    the way ``avatar.browser`` finds it)."""
    import os
    import shutil

    chromium = os.environ.get("TWIN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if Path(chromium).exists():
        return Check("browser", "chromium", True, chromium)
    return Check("browser", "chromium", False, f"no {chromium} (browser tests, twin bench avatar)",
                 "apt-get install chromium (or set TWIN_CHROMIUM)")


def checks(*, start_ray: bool = True) -> list[Check]:
    """Every check, in report order. ``start_ray=False`` skips starting a local Ray."""
    result: list[Check] = [_python_check()]
    result += [_package_check(p, required=True) for p in _REQUIRED]
    result += [_package_check(p, required=False) for p in _OPTIONAL]
    result += _model_checks()
    if start_ray:
        result.append(_ray_check())
    result.append(_audio_check())
    result.append(_camera_check())
    result.append(_browser_check())
    return result
