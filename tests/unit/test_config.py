"""Config and mission files: the shipped ones validate; bad ones fail with file, field path and
a message that says what was expected."""

import json
import textwrap
from pathlib import Path

import pytest

from twin.config import (
    ActorSpec,
    ConfigError,
    Mission,
    TwinConfig,
    config_json_schema,
    load_config,
    load_mission,
    mission_json_schema,
    parse_mission_time,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
MISSIONS = sorted(p for p in (ROOT / "missions").glob("*.yaml")
                  if not p.name.endswith(".questions.yaml"))  # not the question files
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))

MINIMAL_MISSION = """\
name: drill
title: A drill
setting: A yard
briefing: Do the drill.
roster:
  - id: ana
    callsign: ALPHA 1
    name: Ana
    role: Commander
objectives:
  - id: obj-1
    text: Finish
    phase: p1
phases:
  - id: p1
    title: One
    duration: "01:00"
    objectives: [obj-1]
  - id: p2
    title: Two
    duration: 30
injects:
  - id: i1
    at: "T+00:20"
    text: Something happens
script:
  - at: 10
    operator: ana
    text: What now?
"""


def write(tmp_path: Path, text: str, name: str = "file.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def mission_error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_mission(path)
    assert info.value.path == path
    return info.value


def config_error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.path == path
    return info.value


def only_problem(error: ConfigError) -> tuple[str, str]:
    assert len(error.problems) == 1, error.problems
    field_path, message = error.problems[0]
    assert str(error) == (
        f"{error.path}: {field_path}: {message}" if field_path else f"{error.path}: {message}"
    )
    return field_path, message


# --- shipped files ------------------------------------------------------------------------


def test_there_is_at_least_one_mission() -> None:
    assert MISSIONS, "missions/*.yaml is empty"


@pytest.mark.parametrize("path", MISSIONS, ids=lambda p: p.name)
def test_shipped_missions_validate(path: Path) -> None:
    mission = load_mission(path)
    assert mission.total_duration > 0
    for knowledge in mission.knowledge:
        assert knowledge.is_absolute() and knowledge.is_file()
    for inject in mission.injects:
        assert inject.when is not None or 0 <= (inject.at or 0) < mission.total_duration


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_validate(path: Path) -> None:
    assert isinstance(load_config(path), TwinConfig)


def test_route_clearance_mission_shape() -> None:
    mission = load_mission(ROOT / "missions" / "route_clearance.yaml")
    assert mission.name == "route_clearance"
    assert 150 <= mission.total_duration <= 240
    assert len(mission.phases) == 4
    assert 5 <= len(mission.injects) <= 7
    assert {operator.expertise for operator in mission.roster} == {"novice", "expert"}
    assert 3 <= len(mission.script) <= 5
    assert 3 <= len(mission.knowledge) <= 4
    assert all(path.suffix == ".md" for path in mission.knowledge)
    phase_ids = {phase.id for phase in mission.phases}
    assert all(objective.phase in phase_ids for objective in mission.objectives)


def test_mission_clock_helpers(tmp_path: Path) -> None:
    mission = load_mission(write(tmp_path, MINIMAL_MISSION))
    assert mission.total_duration == 90.0
    assert mission.phase_start("p1") == 0.0
    assert mission.phase_start("p2") == 60.0
    with pytest.raises(KeyError):
        mission.phase_start("nope")
    assert mission.phase_at(0).id == "p1"  # type: ignore[union-attr]
    assert mission.phase_at(59.9).id == "p1"  # type: ignore[union-attr]
    assert mission.phase_at(60).id == "p2"  # type: ignore[union-attr]
    assert mission.phase_at(90) is None
    assert mission.phase_at(-1) is None
    assert mission.injects[0].at == 20.0


def test_models_are_frozen_and_actor_spec_accepts_both_names() -> None:
    spec = ActorSpec(class_path="actors.recorder.Recorder")
    assert spec == ActorSpec.model_validate({"class": "actors.recorder.Recorder"})
    assert spec.on_failure == "degrade" and spec.max_restarts == 3
    with pytest.raises(ValueError):
        spec.enabled = False
    config = TwinConfig()
    assert config.ray.namespace == "twin" and config.bus.inbox_capacity == 256
    assert config.session.log_dir == Path("sessions")


def test_json_schemas() -> None:
    schema = mission_json_schema()
    json.dumps(schema)
    assert "phases" in schema["properties"]
    assert "phases" in schema["required"]
    config = config_json_schema()
    json.dumps(config)
    assert "class" in config["$defs"]["ActorSpec"]["properties"]


# --- mission time -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (90, 90.0),
        (12.5, 12.5),
        ("45", 45.0),
        ("02:30", 150.0),
        ("00:05", 5.0),
        ("1:02:03", 3723.0),
        ("T+02:00", 120.0),
        ("T+00:45", 45.0),
        ("T+01:00:00", 3600.0),
        (" T+ 00:10 ", 10.0),
    ],
)
def test_parse_mission_time(value: str | int | float, seconds: float) -> None:
    assert parse_mission_time(value) == seconds


@pytest.mark.parametrize("value", ["soon", "", "T+", "2:3:4:5", "01:60", "1:60:00", "-5", -1])
def test_parse_mission_time_rejects(value: str | int) -> None:
    with pytest.raises(ValueError, match=r'expected seconds or a time like "T\+02:00"'):
        parse_mission_time(value)


def test_parse_mission_time_message_quotes_the_value() -> None:
    with pytest.raises(ValueError) as info:
        parse_mission_time("soon")
    assert str(info.value) == 'expected seconds or a time like "T+02:00", got "soon"'


# --- bad files ----------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_mission(path)
    assert info.value.path == path
    assert info.value.problems == [("", "file not found")]
    assert str(info.value) == f"{path}: file not found"


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    error = mission_error(tmp_path, "name: drill\ntitle: [unclosed\nsetting: x\n")
    field_path, message = only_problem(error)
    assert field_path == ""
    assert message.startswith("YAML syntax error at line 3, column")


def test_yaml_duplicate_key(tmp_path: Path) -> None:
    error = config_error(tmp_path, "bus: {}\nbus: {}\n")
    field_path, message = only_problem(error)
    assert field_path == ""
    assert "line 2" in message and 'duplicate key "bus"' in message


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    error = mission_error(tmp_path, "- name: drill\n")
    assert only_problem(error) == ("", "expected a mapping at the top level, got a list")


def test_unknown_field_names_it_and_the_allowed_fields(tmp_path: Path) -> None:
    text = MINIMAL_MISSION.replace("    title: Two\n", "    title: Two\n    lenght: 3\n")
    field_path, message = only_problem(mission_error(tmp_path, text))
    assert field_path == "phases[1].lenght"
    assert message == ("unknown field (allowed: id, title, duration, briefing, objectives, "
                       "until)")


def test_wrong_type(tmp_path: Path) -> None:
    text = MINIMAL_MISSION.replace(
        "    role: Commander\n", "    role: Commander\n    preferences: 3\n"
    )
    field_path, message = only_problem(mission_error(tmp_path, text))
    assert field_path == "roster[0].preferences"
    assert "valid list" in message and "got 3" in message


def test_missing_field(tmp_path: Path) -> None:
    text = MINIMAL_MISSION.replace("briefing: Do the drill.\n", "")
    assert only_problem(mission_error(tmp_path, text)) == ("briefing", "field required")


def test_bad_duration_string(tmp_path: Path) -> None:
    text = MINIMAL_MISSION.replace("duration: 30", 'duration: "half a minute"')
    field_path, message = only_problem(mission_error(tmp_path, text))
    assert field_path == "phases[1].duration"
    assert message == 'expected seconds or a duration like "02:30", got "half a minute"'


def test_bad_inject_time(tmp_path: Path) -> None:
    text = MINIMAL_MISSION.replace('at: "T+00:20"', "at: soon")
    field_path, message = only_problem(mission_error(tmp_path, text))
    assert field_path == "injects[0].at"
    assert message == 'expected seconds or a time like "T+02:00", got "soon"'


def test_inject_beyond_mission_end(tmp_path: Path) -> None:
    text = MINIMAL_MISSION.replace('at: "T+00:20"', 'at: "T+01:30"')
    field_path, message = only_problem(mission_error(tmp_path, text))
    assert field_path == "injects[0].at"
    assert "beyond the end of the mission" in message and "[0, 90)" in message


def test_duplicate_phase_id(tmp_path: Path) -> None:
    text = MINIMAL_MISSION.replace("  - id: p2\n", "  - id: p1\n")
    field_path, message = only_problem(mission_error(tmp_path, text))
    assert field_path == "phases[1].id"
    assert message == 'duplicate id "p1" (already used by phases[0])'


def test_objective_with_unknown_phase(tmp_path: Path) -> None:
    text = MINIMAL_MISSION.replace("    phase: p1\n", "    phase: p9\n")
    field_path, message = only_problem(mission_error(tmp_path, text))
    assert field_path == "objectives[0].phase"
    assert message == 'unknown phase "p9" (phases: p1, p2)'


def test_phase_with_unknown_objective(tmp_path: Path) -> None:
    text = MINIMAL_MISSION.replace("objectives: [obj-1]", "objectives: [obj-1, obj-2]")
    field_path, message = only_problem(mission_error(tmp_path, text))
    assert field_path == "phases[0].objectives[1]"
    assert 'unknown objective "obj-2"' in message


def test_script_line_with_unknown_operator(tmp_path: Path) -> None:
    text = MINIMAL_MISSION.replace("operator: ana", "operator: bob")
    field_path, message = only_problem(mission_error(tmp_path, text))
    assert field_path == "script[0].operator"
    assert message == 'unknown operator "bob" (roster: ana)'


def test_knowledge_paths_resolve_and_must_exist(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("# A\n", encoding="utf-8")
    good = MINIMAL_MISSION + "knowledge:\n  - notes/a.md\n"
    mission = load_mission(write(tmp_path, good, "good.yaml"))
    assert mission.knowledge == [(tmp_path / "notes" / "a.md").resolve()]

    bad = MINIMAL_MISSION + "knowledge:\n  - notes/a.md\n  - notes/b.md\n"
    field_path, message = only_problem(mission_error(tmp_path, bad))
    assert field_path == "knowledge[1]"
    assert message == f"file not found: {(tmp_path / 'notes' / 'b.md').resolve()}"


def test_several_problems_are_all_listed(tmp_path: Path) -> None:
    text = MINIMAL_MISSION.replace("name: drill", "name: Drill Two").replace(
        "duration: 30", "duration: -3"
    )
    error = mission_error(tmp_path, text)
    assert [field_path for field_path, _ in error.problems] == ["name", "phases[1].duration"]
    assert len(str(error).splitlines()) == 2
    assert all(line.startswith(f"{error.path}: ") for line in str(error).splitlines())


def test_python_construction_checks_references_too() -> None:
    data = {
        "name": "x",
        "title": "X",
        "setting": "S",
        "briefing": "B",
        "roster": [{"id": "a", "callsign": "A", "name": "A", "role": "R"}],
        "phases": [{"id": "p", "title": "P", "duration": 10}],
        "script": [{"at": 5, "operator": "zed", "text": "?"}],
    }
    with pytest.raises(ValueError, match='unknown operator "zed"'):
        Mission.model_validate(data)


# --- runtime config -----------------------------------------------------------------------


def test_config_defaults_and_actor(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        ray:
          num_cpus: 4
        actors:
          recorder:
            class: actors.recorder.Recorder
            on_failure: end
            settings: {flush: true}
        """,
    )
    config = load_config(path)
    assert config.ray.num_cpus == 4
    assert config.actors["recorder"].class_path == "actors.recorder.Recorder"
    assert config.actors["recorder"].settings == {"flush": True}


def test_actor_with_bad_class_path(tmp_path: Path) -> None:
    error = config_error(tmp_path, "actors:\n  mission:\n    class: MissionDirector\n")
    field_path, message = only_problem(error)
    assert field_path == "actors.mission.class"
    assert "expected a dotted path like actors.recorder.Recorder" in message


def test_unknown_key_in_actor_spec(tmp_path: Path) -> None:
    text = "actors:\n  mission:\n    class: actors.mission.MissionDirector\n    restarts: 2\n"
    field_path, message = only_problem(config_error(tmp_path, text))
    assert field_path == "actors.mission.restarts"
    assert message.startswith("unknown field (allowed: class, enabled, num_cpus,")
    assert "max_restarts" in message


def test_bad_actor_name(tmp_path: Path) -> None:
    text = "actors:\n  Mission Director:\n    class: actors.mission.MissionDirector\n"
    field_path, message = only_problem(config_error(tmp_path, text))
    assert field_path == "actors.Mission Director"
    assert "invalid actor name" in message


def test_config_value_out_of_range(tmp_path: Path) -> None:
    field_path, message = only_problem(config_error(tmp_path, "bus:\n  window: 0\n"))
    assert field_path == "bus.window"
    assert "greater than or equal to 1" in message and "got 0" in message


def test_config_unknown_section(tmp_path: Path) -> None:
    field_path, message = only_problem(config_error(tmp_path, "busses: {}\n"))
    assert field_path == "busses"
    assert message == "unknown field (allowed: ray, bus, session, actors)"
