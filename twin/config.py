"""Typed configuration of the twin runtime and the schema of mission scenarios.

Two kinds of YAML file are described here, both as strict pydantic models (unknown keys are
errors, instances are frozen):

- a runtime config (``configs/*.yaml``, :class:`TwinConfig`): where Ray runs, bus sizes, where
  session logs go, and which actors to place (by dotted class path) with their failure policy;
- a mission (``missions/*.yaml``, :class:`Mission`): the scenario a trainer launches -- roster,
  objectives, phases, timed and conditional injects, the twin's persona, knowledge notes and
  scripted operator lines. A :class:`Condition` (the operator said a word, an inject fired, an
  objective is met, a phase runs, a time has passed) meets an objective, ends a phase early or
  fires an inject.

:func:`load_config` and :func:`load_mission` read a file and either return the model or raise
:class:`ConfigError`, whose message lists every problem as ``<file>: <field.path>: <message>``
with the field path spelled as in the YAML (``phases[1].duration``, ``actors.mission.class``).

Mission times and durations are seconds; in files they may also be written ``"MM:SS"``,
``"HH:MM:SS"`` and, for points in time, ``"T+MM:SS"`` / ``"T+HH:MM:SS"``
(see :func:`parse_mission_time`).
"""

import math
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = [
    "ActorSpec",
    "BusSettings",
    "Condition",
    "ConfigError",
    "Inject",
    "Mission",
    "Objective",
    "Operator",
    "Persona",
    "Phase",
    "RaySettings",
    "ScriptedLine",
    "SessionSettings",
    "StrictModel",
    "TwinConfig",
    "config_json_schema",
    "load_config",
    "load_mission",
    "mission_json_schema",
    "parse_mission_time",
]


# --------------------------------------------------------------------------------------------
# Errors


class ConfigError(ValueError):
    """A config or mission file that does not validate.

    ``str()`` lists one line per problem: ``'<path>: <field.path>: <what is wrong>'`` (the field
    path is left out for problems with the file as a whole, e.g. ``'<path>: file not found'``).
    """

    path: Path
    problems: list[tuple[str, str]]

    def __init__(self, path: str | Path, problems: list[tuple[str, str]]) -> None:
        self.path = Path(path)
        self.problems = list(problems)
        super().__init__(self._render())

    def _render(self) -> str:
        lines = []
        for field_path, message in self.problems:
            # one line each: a key or value with a line break in it is shown escaped
            field_path, message = _one_line(field_path), _one_line(message)
            if field_path:
                lines.append(f"{self.path}: {field_path}: {message}")
            else:
                lines.append(f"{self.path}: {message}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._render()


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _custom_error(kind: str, message: str) -> PydanticCustomError:
    # The message goes through the context so braces in user input are not format fields.
    return PydanticCustomError(kind, "{message}", {"message": message})


# --------------------------------------------------------------------------------------------
# Mission time

_CLOCK_RE = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")
_TIME_HINT = 'expected seconds or a time like "T+02:00"'
_DURATION_HINT = 'expected seconds or a duration like "02:30"'


def _parse_time(value: object, *, allow_t_plus: bool) -> float:
    hint = _TIME_HINT if allow_t_plus else _DURATION_HINT
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{hint}, got {value!r}")
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:  # an integer of hundreds of digits
            raise ValueError(f"{hint}, got a number too large to be a time") from None
    else:
        text = value.strip()
        if allow_t_plus and text.upper().startswith("T+"):
            text = text[2:].strip()
        try:
            seconds = float(text)
        except ValueError:
            match = _CLOCK_RE.match(text)
            if match is None:
                raise ValueError(f'{hint}, got "{value}"') from None
            hours = int(match.group(1) or 0)
            minutes = int(match.group(2))
            secs = float(match.group(3))
            if match.group(1) is not None and minutes >= 60:
                raise ValueError(f'{hint} (minutes must be below 60), got "{value}"') from None
            if secs >= 60:
                raise ValueError(f'{hint} (seconds must be below 60), got "{value}"') from None
            seconds = hours * 3600 + minutes * 60 + secs
    if not math.isfinite(seconds):
        raise ValueError(f"{hint}, got {value!r}")
    if seconds < 0:
        raise ValueError(f"{hint}, got a negative time {value!r}")
    return seconds


def parse_mission_time(value: str | int | float) -> float:
    """Seconds from a mission time: a number of seconds, ``"MM:SS"``, ``"HH:MM:SS"``,
    ``"T+MM:SS"`` or ``"T+HH:MM:SS"`` (``"T+02:00"`` -> ``120.0``). Raises ``ValueError``."""
    return _parse_time(value, allow_t_plus=True)


def _validate_time(value: object) -> float:
    try:
        return _parse_time(value, allow_t_plus=True)
    except ValueError as exc:
        raise _custom_error("mission_time", str(exc)) from None


def _validate_duration(value: object) -> float:
    try:
        return _parse_time(value, allow_t_plus=False)
    except ValueError as exc:
        raise _custom_error("mission_duration", str(exc)) from None


_TIME_JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^(T\+)?((\d+:)?\d{1,2}:\d{1,2}(\.\d+)?|\d+(\.\d+)?)$"},
    ],
    "description": 'seconds, or "MM:SS", "HH:MM:SS", "T+MM:SS", "T+HH:MM:SS"',
}
_DURATION_JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "string", "pattern": r"^((\d+:)?\d{1,2}:\d{1,2}(\.\d+)?|\d+(\.\d+)?)$"},
    ],
    "description": 'seconds, or "MM:SS", "HH:MM:SS"',
}

MissionTime = Annotated[float, BeforeValidator(_validate_time), WithJsonSchema(_TIME_JSON_SCHEMA)]
Duration = Annotated[
    float, BeforeValidator(_validate_duration), Field(gt=0), WithJsonSchema(_DURATION_JSON_SCHEMA)
]


def _format_time(seconds: float) -> str:
    whole = int(seconds)
    frac = seconds - whole
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"T+{hours:02d}:{minutes:02d}:{secs:02d}" if hours else f"T+{minutes:02d}:{secs:02d}"
    return text + (f"{frac:.3f}".lstrip("0") if frac else "")


# --------------------------------------------------------------------------------------------
# Names and ids

_SLUG_PATTERN = r"^[a-z][a-z0-9_-]*$"
_SLUG_RE = re.compile(_SLUG_PATTERN)
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_ID_RE = re.compile(_ID_PATTERN)
_CLASS_PATH_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"
_CLASS_PATH_RE = re.compile(_CLASS_PATH_PATTERN)


def _check_slug(value: str) -> str:
    if not _SLUG_RE.match(value):
        raise _custom_error(
            "slug",
            'expected a lowercase name like "route_clearance" (a-z, 0-9, "_", "-", '
            f'starting with a letter), got "{value}"',
        )
    return value


def _check_id(value: str) -> str:
    if not _ID_RE.match(value):
        raise _custom_error(
            "identifier",
            'expected an id like "p1" or "clear-route" (letters, digits, "_", "-", ".", '
            f'no spaces), got "{value}"',
        )
    return value


def _check_class_path(value: str) -> str:
    if not _CLASS_PATH_RE.match(value):
        raise _custom_error(
            "class_path",
            f'expected a dotted path like actors.recorder.Recorder, got "{value}"',
        )
    return value


Slug = Annotated[
    str, AfterValidator(_check_slug), WithJsonSchema({"type": "string", "pattern": _SLUG_PATTERN})
]
Identifier = Annotated[
    str, AfterValidator(_check_id), WithJsonSchema({"type": "string", "pattern": _ID_PATTERN})
]
ClassPath = Annotated[
    str,
    AfterValidator(_check_class_path),
    WithJsonSchema({"type": "string", "pattern": _CLASS_PATH_PATTERN}),
]
NonEmpty = Annotated[str, Field(min_length=1)]


# --------------------------------------------------------------------------------------------
# Runtime config


class StrictModel(BaseModel):
    """Base of every config and mission model: unknown keys are errors, instances are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RaySettings(StrictModel):
    """Where and how Ray runs. ``address=None`` starts a local Ray; otherwise join a cluster."""

    address: str | None = None
    num_cpus: int | None = Field(default=None, ge=1)
    object_store_memory_mb: int = Field(default=256, ge=64)
    include_dashboard: bool = False
    namespace: str = "twin"


class BusSettings(StrictModel):
    """Sizes of the message bus: inbox capacity, in-flight window and batch size."""

    inbox_capacity: int = Field(default=256, ge=1)
    window: int = Field(default=32, ge=1)
    max_batch: int = Field(default=256, ge=1)


class SessionSettings(StrictModel):
    """Where session logs go and how often the log commits."""

    log_dir: Path = Path("sessions")
    commit_interval_ms: int = Field(default=20, ge=1)
    commit_max_messages: int = Field(default=200, ge=1)


class ActorSpec(StrictModel):
    """One actor to place: its class (dotted path), resources and failure policy."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    # validation_alias (not alias) so type checkers see ``ActorSpec(class_path=...)``.
    class_path: ClassPath = Field(validation_alias="class", serialization_alias="class")
    enabled: bool = True
    num_cpus: float = Field(default=0, ge=0)
    resources: dict[str, float] = Field(default_factory=dict)
    max_restarts: int = Field(default=3, ge=-1, description="-1 = unlimited")
    on_failure: Literal["restart", "degrade", "end"] = "degrade"
    inbox_capacity: int | None = Field(default=None, ge=1)
    drop_when_full: bool = True
    start_timeout_s: float = Field(default=30.0, gt=0, description="how long its start may take "
                                   "(loading models, a mind reading its mission)")
    stop_timeout_s: float = Field(default=10.0, gt=0, description="its grace period at the end "
                                  "of a session: an actor not stopped by then is killed")
    settings: dict[str, Any] = Field(default_factory=dict)


def _check_actor_name(value: str) -> str:
    if not _SLUG_RE.match(value):
        raise _custom_error(
            "actor_name",
            'invalid actor name: expected lowercase letters, digits, "_" or "-", '
            f'starting with a letter, got "{value}"',
        )
    return value


ActorName = Annotated[str, AfterValidator(_check_actor_name)]


class TwinConfig(StrictModel):
    """A runtime config file (``configs/*.yaml``)."""

    ray: RaySettings = Field(default_factory=RaySettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    session: SessionSettings = Field(default_factory=SessionSettings)
    actors: dict[ActorName, ActorSpec] = Field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Mission


class Operator(StrictModel):
    """A person on the roster the twin works with."""

    id: Slug
    callsign: NonEmpty
    name: NonEmpty
    role: NonEmpty
    expertise: Literal["novice", "intermediate", "expert"] = "intermediate"
    preferences: list[str] = Field(default_factory=list)


def _check_regex(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        re.compile(value)
    except re.error as exc:
        raise _custom_error("regex", f'not a valid regular expression ({exc}): "{value}"') from None
    return value


class Condition(StrictModel):
    """When something holds in the mission; every clause given must hold.

    - ``said`` (any of these words or phrases) and ``matches`` (a regular expression) look at the
      operator's final transcript: such a condition holds at the moment the operator says it;
    - ``fired`` (injects), ``met`` (objectives), ``phase`` (the running phase) and ``after``
      (a mission time) look at the state of the mission: such a condition holds from the moment
      they all do.
    """

    said: list[NonEmpty] = Field(default_factory=list, description="any of these words or "
                                 "phrases in the operator's final transcript (case-insensitive)")
    matches: Annotated[str | None, AfterValidator(_check_regex)] = Field(
        default=None, description="a regular expression searched in the operator's final "
        "transcript (case-insensitive)")
    fired: list[str] = Field(default_factory=list, description="all these injects have fired")
    met: list[str] = Field(default_factory=list, description="all these objectives are met")
    phase: str | None = Field(default=None, description="only while this phase runs")
    after: MissionTime | None = Field(default=None, description="not before this mission time")

    @property
    def on_speech(self) -> bool:
        """Whether it holds at a moment (an operator's words), not from a moment on."""
        return bool(self.said) or self.matches is not None

    @model_validator(mode="after")
    def _not_empty(self) -> "Condition":
        if not (self.on_speech or self.fired or self.met or self.phase or self.after is not None):
            raise ValueError("an empty condition: give at least one of said, matches, fired, "
                             "met, phase, after")
        return self


class Objective(StrictModel):
    """A mission objective, optionally tied to the phase in which it should be met, and met
    when its condition ``when`` holds (the trainer may also mark it met)."""

    id: Identifier
    text: NonEmpty
    phase: str | None = None
    when: Condition | None = None


class Phase(StrictModel):
    """A phase; phases run back to back in file order. ``duration`` is the longest it runs;
    ``until`` ends it earlier, as soon as that condition holds (the clock then moves to the next
    phase's start, and what was planned for the rest of this phase does not happen)."""

    id: Identifier
    title: NonEmpty
    duration: Duration
    briefing: str = ""
    objectives: list[str] = Field(default_factory=list)
    until: Condition | None = None


class Inject(StrictModel):
    """An event the mission director publishes (training mode only): at mission time ``at``,
    or when its condition ``when`` holds -- once, or every time with ``repeat`` (conditions on
    the operator's words only)."""

    id: Identifier
    at: MissionTime | None = None
    when: Condition | None = None
    repeat: bool = False
    kind: Literal["report", "alert", "comms", "intel", "status"] = "report"
    source: str = ""
    text: NonEmpty
    priority: Literal["routine", "priority", "flash"] = "routine"
    facts: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _at_or_when(self) -> "Inject":
        if (self.at is None) == (self.when is None):
            raise ValueError('give either "at" (a mission time) or "when" (a condition), '
                             "not both or neither")
        if self.repeat and (self.when is None or not self.when.on_speech):
            raise ValueError('"repeat" needs a condition on the operator\'s words '
                             '(when.said or when.matches)')
        return self


class ScriptedLine(StrictModel):
    """A line a scripted operator speaks at mission time ``at`` (training mode)."""

    at: MissionTime
    operator: str
    text: NonEmpty


class Persona(StrictModel):
    """How the twin presents itself."""

    name: str = "Twin"
    callsign: str = "Twin"
    style: str = "calm, concise, professional teammate"


def _resolve_knowledge(value: Path, info: ValidationInfo) -> Path:
    """With ``context={"base_dir": folder}`` (as load_mission passes), make the path absolute
    relative to ``folder`` and require the file to exist; without a context leave it as is."""
    context = info.context
    if not isinstance(context, dict) or context.get("base_dir") is None:
        return value
    base = Path(context["base_dir"])
    try:
        resolved = (base / value.expanduser()).resolve()
        found = resolved.is_file()
    except (OSError, RuntimeError) as exc:  # a name too long, a loop of links, no such user
        why = getattr(exc, "strerror", None) or exc
        raise _custom_error("file_not_found", f"cannot open the file: {why}") from None
    if not found:
        raise _custom_error("file_not_found", f"file not found: {resolved}")
    return resolved


KnowledgePath = Annotated[Path, AfterValidator(_resolve_knowledge)]


class Mission(StrictModel):
    """A mission scenario (``missions/*.yaml``)."""

    name: Slug
    title: NonEmpty
    setting: NonEmpty
    briefing: NonEmpty
    persona: Persona = Field(default_factory=Persona)
    roster: list[Operator] = Field(min_length=1)
    objectives: list[Objective] = Field(default_factory=list)
    phases: list[Phase] = Field(min_length=1)
    injects: list[Inject] = Field(default_factory=list)
    knowledge: list[KnowledgePath] = Field(default_factory=list)
    script: list[ScriptedLine] = Field(default_factory=list)

    @property
    def total_duration(self) -> float:
        """Seconds from the start of the first phase to the end of the last."""
        return sum(phase.duration for phase in self.phases)

    def phase_start(self, phase_id: str) -> float:
        """Mission time at which the phase starts; ``KeyError`` for an unknown id."""
        start = 0.0
        for phase in self.phases:
            if phase.id == phase_id:
                return start
            start += phase.duration
        raise KeyError(phase_id)

    def phase_at(self, t: float) -> Phase | None:
        """The phase active at mission time ``t``; ``None`` before 0 or from the end on."""
        if t < 0:
            return None
        start = 0.0
        for phase in self.phases:
            if start <= t < start + phase.duration:
                return phase
            start += phase.duration
        return None

    @model_validator(mode="after")
    def _check_references(self) -> "Mission":
        errors: list[InitErrorDetails] = []

        def problem(loc: tuple[str | int, ...], kind: str, message: str, value: Any) -> None:
            errors.append(InitErrorDetails(type=_custom_error(kind, message), loc=loc, input=value))

        def unique(field: str, ids: list[str]) -> None:
            first: dict[str, int] = {}
            for index, item_id in enumerate(ids):
                if item_id in first:
                    problem(
                        (field, index, "id"),
                        "duplicate_id",
                        f'duplicate id "{item_id}" (already used by {field}[{first[item_id]}])',
                        item_id,
                    )
                else:
                    first[item_id] = index

        unique("roster", [operator.id for operator in self.roster])
        unique("objectives", [objective.id for objective in self.objectives])
        unique("phases", [phase.id for phase in self.phases])
        unique("injects", [inject.id for inject in self.injects])

        phase_ids = [phase.id for phase in self.phases]
        objective_ids = {objective.id for objective in self.objectives}
        operator_ids = [operator.id for operator in self.roster]

        for index, objective in enumerate(self.objectives):
            if objective.phase is not None and objective.phase not in phase_ids:
                problem(
                    ("objectives", index, "phase"),
                    "unknown_phase",
                    f'unknown phase "{objective.phase}" (phases: {", ".join(phase_ids)})',
                    objective.phase,
                )
        for index, phase in enumerate(self.phases):
            for position, objective_id in enumerate(phase.objectives):
                if objective_id not in objective_ids:
                    known = ", ".join(sorted(objective_ids)) or "none defined"
                    problem(
                        ("phases", index, "objectives", position),
                        "unknown_objective",
                        f'unknown objective "{objective_id}" (objectives: {known})',
                        objective_id,
                    )

        total = self.total_duration

        def within(loc: tuple[str | int, ...], at: float) -> None:
            if at >= total:
                problem(
                    loc,
                    "beyond_mission_end",
                    f"{_format_time(at)} ({at:g} s) is at or beyond the end of the mission "
                    f"({_format_time(total)}, {total:g} s); expected a time in [0, {total:g})",
                    at,
                )

        for index, inject in enumerate(self.injects):
            if inject.at is not None:
                within(("injects", index, "at"), inject.at)

        inject_ids = [inject.id for inject in self.injects]

        def check_condition(loc: tuple[str | int, ...], condition: Condition | None) -> None:
            if condition is None:
                return
            for position, inject_id in enumerate(condition.fired):
                if inject_id not in inject_ids:
                    problem((*loc, "fired", position), "unknown_inject",
                            f'unknown inject "{inject_id}" (injects: '
                            f'{", ".join(inject_ids) or "none defined"})', inject_id)
            for position, objective_id in enumerate(condition.met):
                if objective_id not in objective_ids:
                    problem((*loc, "met", position), "unknown_objective",
                            f'unknown objective "{objective_id}" (objectives: '
                            f'{", ".join(sorted(objective_ids)) or "none defined"})',
                            objective_id)
            if condition.phase is not None and condition.phase not in phase_ids:
                problem((*loc, "phase"), "unknown_phase",
                        f'unknown phase "{condition.phase}" (phases: {", ".join(phase_ids)})',
                        condition.phase)
            if condition.after is not None:
                within((*loc, "after"), condition.after)

        for index, objective in enumerate(self.objectives):
            check_condition(("objectives", index, "when"), objective.when)
        for index, phase in enumerate(self.phases):
            check_condition(("phases", index, "until"), phase.until)
        for index, inject in enumerate(self.injects):
            check_condition(("injects", index, "when"), inject.when)
            if inject.when is not None and inject.id in inject.when.fired:
                problem(("injects", index, "when", "fired"), "self_reference",
                        f'inject "{inject.id}" cannot wait for itself', inject.id)
        for index, line in enumerate(self.script):
            within(("script", index, "at"), line.at)
            if line.operator not in operator_ids:
                problem(
                    ("script", index, "operator"),
                    "unknown_operator",
                    f'unknown operator "{line.operator}" (roster: {", ".join(operator_ids)})',
                    line.operator,
                )

        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self


# --------------------------------------------------------------------------------------------
# Loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that rejects duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        try:
            duplicate = key in seen
        except TypeError:  # unhashable key: let the constructor report it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f'duplicate key "{key}"', key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(path, [("", "file not found")])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [("", f"cannot read file: {exc}")]) from exc
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = "; ".join(part for part in (exc.context, exc.problem) if part)
        raise ConfigError(path, [("", f"YAML syntax error{where}: {what}")]) from exc
    except yaml.YAMLError as exc:  # (its message runs over several lines)
        raise ConfigError(path, [("", f"YAML syntax error: {' '.join(str(exc).split())}")]
                          ) from exc
    except RecursionError:  # PyYAML builds nested lists and mappings recursively
        raise ConfigError(path, [("", "YAML nested too deeply")]) from None
    except ValueError as exc:  # a value PyYAML cannot build (an integer of 5000 digits)
        raise ConfigError(path, [("", f"YAML value that cannot be read: {exc}")]) from None
    if not isinstance(data, dict):
        got = "an empty document" if data is None else f"a {type(data).__name__}"
        raise ConfigError(path, [("", f"expected a mapping at the top level, got {got}")])
    return data


def _field_path(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part == "[key]":
            continue
        else:
            text += f".{part}" if text else str(part)
    return text


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and Optional[...] from an annotation."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _model_at(root: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class found by following ``loc`` (YAML keys and list indexes) from ``root``."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = current.model_fields
            matches = [f for n, f in fields.items() if part in (n, _yaml_name(n, f))]
            if not matches:
                return None
            current = matches[0].annotation
        elif typing.get_origin(current) in (list, dict):
            current = typing.get_args(current)[-1]
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _yaml_name(name: str, info: FieldInfo) -> str:
    """The key of a field in a YAML file: its (validation) alias, else its name."""
    if isinstance(info.validation_alias, str):
        return info.validation_alias
    return info.alias or name


def _allowed_fields(model: type[BaseModel]) -> list[str]:
    return [_yaml_name(name, info) for name, info in model.model_fields.items()]


_OWN_MESSAGE_TYPES = {
    "mission_time",
    "mission_duration",
    "slug",
    "identifier",
    "class_path",
    "actor_name",
    "file_not_found",
    "duplicate_id",
    "unknown_phase",
    "unknown_objective",
    "unknown_operator",
    "beyond_mission_end",
    "regex",
    "unknown_inject",
    "self_reference",
}


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _problems(root: type[BaseModel], error: ValidationError) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        kind = item["type"]
        if kind == "missing":
            message = "field required"
        elif kind == "extra_forbidden":
            model = _model_at(root, loc[:-1])
            if model is None:
                message = "unknown field"
            else:
                message = f"unknown field (allowed: {', '.join(_allowed_fields(model))})"
        else:
            message = item["msg"]
            if kind == "value_error":
                message = message.removeprefix("Value error, ")
            if kind not in _OWN_MESSAGE_TYPES and isinstance(
                item.get("input"), (str, int, float, bool, type(None))
            ):
                message = f"{message}, got {_describe(item['input'])}"
        problems.append((_field_path(loc), message))
    return problems


def load_config(path: str | Path) -> TwinConfig:
    """Read and validate a runtime config file; raise :class:`ConfigError` if it is invalid."""
    file = Path(path)
    data = _read_yaml_mapping(file)
    try:
        return TwinConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(file, _problems(TwinConfig, exc)) from None


def load_mission(path: str | Path) -> Mission:
    """Read and validate a mission file; raise :class:`ConfigError` if it is invalid.

    ``knowledge`` paths are resolved relative to the mission file's folder, must exist, and
    are absolute in the returned mission.
    """
    file = Path(path)
    data = _read_yaml_mapping(file)
    try:
        return Mission.model_validate(data, context={"base_dir": file.resolve().parent})
    except ValidationError as exc:
        raise ConfigError(file, _problems(Mission, exc)) from None


def mission_json_schema() -> dict[str, Any]:
    """JSON Schema of a mission file (for editors and validation outside Python)."""
    return Mission.model_json_schema(by_alias=True)


def config_json_schema() -> dict[str, Any]:
    """JSON Schema of a runtime config file."""
    return TwinConfig.model_json_schema(by_alias=True)
