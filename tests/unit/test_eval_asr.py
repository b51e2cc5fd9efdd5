"""``twin eval asr`` without a model: reading refs files (and the errors that name the file and
field), scoring (entity exact match, pooled word error rates) and the report's shape."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from twin.cli import app
from twin.eval_asr import (
    ACTOR,
    PLAIN,
    Clip,
    ClipResult,
    EvalError,
    Heard,
    Label,
    format_report,
    load_refs,
    match_entities,
    report,
    summarise,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
RADIO = ROOT / "tests" / "fixtures" / "radio"


def write_wav(path: Path, seconds: float = 0.2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(bytes(2 * round(seconds * 16000)))
    return path


def refs_file(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "refs.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def one_set(**clip: object) -> dict[str, object]:
    return {"sets": [{"name": "demo", "mission": "missions/route_clearance.yaml",
                      "held_out": False,
                      "clips": [{"file": "a.wav", "text": "Who's got BULLDOG 2?"} | clip]}]}


def test_a_refs_file_is_read_with_its_missions_labels_and_voice_ends(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav")
    refs = refs_file(tmp_path, one_set(entities=[{"kind": "Callsign", "text": "BULLDOG  2"}],
                                       voice_end=0.15, spoken="Who's got Bulldog two?"))
    [clip_set] = load_refs(refs, tmp_path)
    assert clip_set.name == "demo" and not clip_set.held_out
    assert clip_set.mission.title and clip_set.mission_path.name == "route_clearance.yaml"
    [clip] = clip_set.clips
    assert clip.path == tmp_path / "a.wav" and clip.voice_end == 0.15
    assert clip.entities == (Label("callsign", "BULLDOG 2"),)


def test_a_refs_file_without_sets_is_one_set_named_after_it(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav")
    refs = refs_file(tmp_path, {"mission": "missions/route_clearance.yaml",
                                "clips": [{"file": "a.wav", "text": "copy"}]})
    [clip_set] = load_refs(refs, tmp_path)
    assert clip_set.name == "refs" and clip_set.clips[0].entities == ()


def test_the_shipped_radio_set_loads_with_a_held_out_set() -> None:
    sets = load_refs(RADIO / "refs.yaml", RADIO)
    assert len(sets) == 8 and sum(s.held_out for s in sets) == 2
    assert {s.mission_path.stem for s in sets if s.held_out} == {"flood_relief"}
    clips = [clip for s in sets for clip in s.clips]
    assert all(clip.voice_end is not None for clip in clips)
    assert Label("grid", "33T VM 4930 7102") in {e for clip in clips for e in clip.entities}


@pytest.mark.parametrize(("change", "message"), [
    ({"file": "missing.wav"}, "clips[0], field 'file': missing.wav: no such file in"),
    ({"text": ""}, "clips[0], field 'text': a non-empty text is required"),
    ({"entities": [{"kind": "grid"}]}, "clips[0], field 'entities[0]': expected {kind, text}"),
    ({"entities": "grid"}, "clips[0], field 'entities': expected a list"),
    ({"voice_end": -1}, "clips[0], field 'voice_end': seconds into the file"),
    ({"speaker": "x"}, "clips[0]: unknown field(s) speaker"),
])
def test_a_bad_clip_is_named_with_its_field(tmp_path: Path, change: dict[str, object],
                                            message: str) -> None:
    write_wav(tmp_path / "a.wav")
    refs = refs_file(tmp_path, one_set(**change))
    with pytest.raises(EvalError) as error:
        load_refs(refs, tmp_path)
    assert str(error.value).startswith(f"{refs}, sets[0], ") and message in str(error.value)


@pytest.mark.parametrize(("change", "message"), [
    ({"mission": "missions/absent.yaml"}, "field 'mission': missions/absent.yaml: no such file"),
    ({"held_out": "yes"}, "field 'held_out': true or false"),
    ({"clips": []}, "field 'clips': expected a list of clips"),
    ({"voices": 2}, "unknown field(s) voices"),
])
def test_a_bad_set_is_named_with_its_field(tmp_path: Path, change: dict[str, object],
                                           message: str) -> None:
    write_wav(tmp_path / "a.wav")
    data = one_set()
    data["sets"][0] |= change  # type: ignore[index]
    with pytest.raises(EvalError, match=r"sets\[0\]") as error:
        load_refs(refs_file(tmp_path, data), tmp_path)
    assert message in str(error.value)


def test_a_missing_audio_folder_or_refs_file_or_bad_yaml_is_named(tmp_path: Path) -> None:
    with pytest.raises(EvalError, match=r"--audio .*absent: no such folder"):
        load_refs(RADIO / "refs.yaml", tmp_path / "absent")
    with pytest.raises(EvalError, match=r"absent\.yaml: cannot read"):
        load_refs(tmp_path / "absent.yaml", tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("sets: [\n")
    with pytest.raises(EvalError, match=r"bad\.yaml: not valid YAML"):
        load_refs(bad, tmp_path)


def test_the_cli_exits_2_with_one_line_naming_the_file_and_field(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav")
    refs = refs_file(tmp_path, one_set(file="gone.wav"))
    result = CliRunner().invoke(app, ["eval", "asr", "--audio", str(tmp_path), "--refs",
                                      str(refs)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"{refs}, sets[0], clips[0], field 'file'" in lines[0]


# ------------------------------------------------------------------------------ scoring

def test_entity_exact_match_needs_the_kind_and_the_written_form_and_counts_each_once() -> None:
    grid = Label("grid", "33T VM 4930 7102")
    bulldog = Label("callsign", "BULLDOG 2")
    found, extra = match_entities(
        [grid, bulldog, bulldog, Label("time", "1500")],
        [Label("grid", "4930 7102"), bulldog, Label("number", "1500"), Label("callsign",
                                                                             "MULE 6")])
    assert found == [False, True, False, False]
    assert extra == [Label("grid", "4930 7102"), Label("number", "1500"),
                     Label("callsign", "MULE 6")]


def result(set_name: str, reference: str, labels: tuple[Label, ...], actor: Heard,
           plain: Heard, delay: float | None = None) -> ClipResult:
    clip = Clip("x.wav", Path("x.wav"), reference, labels, 1.0)
    return ClipResult(set_name, clip, {ACTOR: actor, PLAIN: plain}, delay, 1)


GRID = Label("grid", "33T VM 4930 7102")
MULE = Label("callsign", "MULE 6")
RESULTS = [
    # 10 words; actor: 1 substitution and the grid; plain: the grid as a shape only
    result("a", "Marker at four nine three zero seven one zero two", (GRID,),
           Heard("Marker at four nine three zero seven one zero too", (GRID,)),
           Heard("Marker at four nine three zero seven one zero two",
                 (Label("grid", "4930 7102"),)), delay=400.0),
    # 4 words; actor: right, plus an unlabelled callsign; plain: one word missing
    result("b", "Is MULE 6 late", (MULE,),
           Heard("Is MULE 6 late", (MULE, Label("callsign", "BULLDOG 2"))),
           Heard("Is MULE 6", (MULE,)), delay=600.0),
]


def test_totals_pool_word_errors_and_count_entities_and_exact_lines() -> None:
    totals = summarise(RESULTS, {"grid", "callsign"})
    actor, plain = totals[ACTOR], totals[PLAIN]
    assert (actor["words"], actor["word_errors"], actor["wer"]) == (14, 1, round(1 / 14, 4))
    assert (plain["word_errors"], plain["wer"]) == (1, round(1 / 14, 4))
    assert actor["entities"]["exact"] == 2 and actor["entities"]["rate"] == 1.0
    assert actor["entities"]["unlabelled_found"] == 1
    # the actor's second line found a callsign nobody said: not exact
    assert actor["lines_exact"] == {"exact": 1, "of": 2, "rate": 0.5}
    assert plain["entities"]["by_kind"] == {
        "callsign": {"exact": 1, "of": 1, "rate": 1.0},
        "grid": {"exact": 0, "of": 1, "rate": 0.0}}
    assert plain["lines_exact"]["exact"] == 1
    assert actor["final_after_voice_ms"] == {"p50": 400.0, "p95": 600.0, "n": 2}  # nearest rank
    assert "final_after_voice_ms" not in plain
    # an extra entity of a kind the refs never label does not spoil a line
    assert summarise(RESULTS, {"grid"})[ACTOR]["lines_exact"]["exact"] == 2


def test_the_report_has_totals_per_set_and_held_out_and_prints_a_table() -> None:
    from twin.config import load_mission
    from twin.eval_asr import ClipSet

    mission = load_mission(ROOT / "missions" / "route_clearance.yaml")
    sets = [ClipSet("a", Path("m.yaml"), mission, False, (RESULTS[0].clip,)),
            ClipSet("b", Path("m.yaml"), mission, True, (RESULTS[1].clip,))]
    figures = report(sets, RESULTS, {"model": "m", "beam_size": 2, "cpu_threads": 2,
                                     "end_of_turn": "smart", "speed": 1.0})
    json.dumps(figures)  # JSON-safe
    assert set(figures["totals"]) == {"all", "not_held_out", "held_out"}
    assert figures["totals"]["held_out"]["clips"] == 1
    assert [s["name"] for s in figures["sets"]] == ["a", "b"] and figures["sets"][1]["held_out"]
    first = figures["clips"][0]
    assert first["entities"] == [{"kind": "grid", "text": "33T VM 4930 7102", ACTOR: True,
                                  PLAIN: False}]
    assert first[ACTOR]["wer"] == 0.1 and first[PLAIN]["wer"] == 0.0
    assert first[ACTOR]["exact"] and not first[PLAIN]["exact"]
    table = format_report(figures)
    assert "entity: grid 33T VM 4930 7102: actor yes, plain NO" in table
    assert "found by actor, not labelled: callsign BULLDOG 2" in table
    assert "b [held out]" in table and "all held out" in table
