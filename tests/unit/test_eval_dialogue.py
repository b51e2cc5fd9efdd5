"""``twin eval dialogue`` without a model: reading question files (and the errors that say which
file, question and field is wrong), and the verdict on a reply."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.config import load_mission
from twin.eval_dialogue import (
    EvalError,
    Question,
    Result,
    check_against,
    format_results,
    load_questions,
    summary,
    verdict,
)
from twin.grounding import Grounds

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
MISSIONS = ROOT / "missions"
QUESTION_FILES = [*sorted(MISSIONS.glob("*.questions.yaml")),
                  ROOT / "tests" / "fixtures" / "heldout" / "flood_relief.questions.yaml"]

YAML = """\
mission: route_clearance.yaml
questions:
  - question: "What's the   troop net alternate?"
    kind: fact
    facts: ["46.900"]
    not: ["44.175"]
  - question: How far back is the incident control point?
    kind: compound
    after: [ied-marker]
    facts: ["200 m | two hundred metres", "cleared ground"]
  - question: What's the brigade commander's dog called?
    kind: unknown
"""

TSV = ("question\tkind\tfacts\tnot\tafter\n"
       "What's the troop net alternate?\tfact\t46.900\t44.175\t\n"
       "Speed in dust and the helicopter?\tcompound\t3 km/h | 3 kph; 800\t\tmet-forecast\n"
       "How many rounds do we carry?\tunknown\t\t\t\n")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ reading


def test_a_yaml_question_file(tmp_path: Path) -> None:
    path = write(tmp_path, "x.questions.yaml", YAML)
    questions, mission = load_questions(path)
    assert mission == (tmp_path / "route_clearance.yaml").resolve()
    assert [q.number for q in questions] == [1, 2, 3]
    first, second, third = questions
    assert first == Question(1, "What's the troop net alternate?", "fact", ("46.900",),
                             ("44.175",))
    assert second.after == ("ied-marker",) and second.facts[0] == "200 m | two hundred metres"
    assert third.kind == "unknown" and third.facts == ()


def test_a_tsv_question_file(tmp_path: Path) -> None:
    questions, mission = load_questions(write(tmp_path, "x.tsv", TSV))
    assert mission is None  # a TSV names no mission
    assert [q.kind for q in questions] == ["fact", "compound", "unknown"]
    assert questions[0].facts == ("46.900",) and questions[0].must_not == ("44.175",)
    assert questions[1].facts == ("3 km/h | 3 kph", "800")  # lists split on ";"
    assert questions[1].after == ("met-forecast",)
    assert questions[2].facts == ()


def test_a_bare_list_of_questions(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", "- {question: 'Who has BULLDOG 2?', kind: fact, "
                                     "facts: [Brandt]}\n")
    questions, mission = load_questions(path)
    assert mission is None and questions[0].facts == ("Brandt",)


@pytest.mark.parametrize(("text", "where"), [
    ("questions:\n  - {question: 'Grid?', kind: guess, facts: ['1']}\n",
     "question 1, field 'kind': 'guess' is not one of fact, compound, recommend, unknown"),
    ("questions:\n  - {question: 'A?', kind: unknown}\n  - {question: 'Grid?', kind: fact}\n",
     "question 2, field 'facts': a fact question needs the facts"),
    ("questions:\n  - {question: 'Grid?', kind: compound, facts: []}\n",
     "question 1, field 'facts': a compound question needs the facts"),
    ("questions:\n  - {question: 'Grid?', kind: fact, facts: ['1'], answer: '1'}\n",
     "question 1: unknown field(s) answer"),
    ("questions:\n  - {question: '', kind: fact, facts: ['1']}\n",
     "question 1, field 'question': a non-empty question is required"),
    ("questions:\n  - {question: 'Grid?', kind: fact, facts: {a: 1}}\n",
     "question 1, field 'facts': expected a list of strings"),
    ("questions:\n  - just a string\n", "question 1: expected a mapping"),
    ("questions: {question: 'Grid?'}\n", "field 'questions': expected a list"),
    ("questions: []\n", ": no questions"),
    ("questions: [\n", ": not valid YAML"),
])
def test_errors_name_the_file_the_question_and_the_field(tmp_path: Path, text: str,
                                                         where: str) -> None:
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(EvalError) as error:
        load_questions(path)
    message = str(error.value)
    assert message.startswith(str(path)) and where in message, message


def test_tsv_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.tsv", "question\tfacts\nGrid?\t1\n")
    with pytest.raises(EvalError, match="header row with at least 'question' and 'kind'"):
        load_questions(path)
    path = write(tmp_path, "bad2.tsv", "question\tkind\tfacts\tsource\nGrid?\tfact\t1\tme\n")
    with pytest.raises(EvalError, match=r"bad2\.tsv, question 1: unknown field\(s\) source"):
        load_questions(path)
    with pytest.raises(EvalError, match="cannot read"):
        load_questions(tmp_path / "missing.tsv")


def test_an_after_that_is_no_inject_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "x.questions.yaml", YAML.replace("ied-marker", "ied-markr"))
    questions, _ = load_questions(path)
    mission = load_mission(MISSIONS / "route_clearance.yaml")
    with pytest.raises(EvalError) as error:
        check_against(mission, questions, path)
    message = str(error.value)
    assert message.startswith(f"{path}, question 2, field 'after': no inject 'ied-markr'")
    assert "ied-marker" in message  # the injects it could have named
    check_against(mission, load_questions(write(tmp_path, "y.yaml", YAML))[0], path)


@pytest.mark.parametrize("path", QUESTION_FILES, ids=lambda p: p.name)
def test_the_shipped_question_files_load_and_name_real_injects(path: Path) -> None:
    questions, mission_path = load_questions(path)
    assert mission_path is not None and mission_path.is_file()
    mission = load_mission(mission_path)
    check_against(mission, questions, path)
    assert {q.kind for q in questions} == {"fact", "compound", "recommend", "unknown"}
    assert all(q.facts for q in questions if q.kind != "unknown")


# ------------------------------------------------------------------------------ verdict

NOTES = ("Troop net: primary 44.175 MHz, alternate 46.900 MHz. SOP cordon is 200 m; incident "
         "control point at least 200 m back on cleared ground. In dust the speed is 3 km/h. "
         "BULLDOG 3 is lowest at 68 %. BULLDOG 2 is LCpl Ana Brandt. Bingo fuel is 25 %. "
         "KESTREL 0 is at FOB HALDEN, grid 33T VM 4930 7102.")


@pytest.fixture(scope="module")
def grounds() -> Grounds:
    return Grounds([NOTES], common_words={"the", "check", "verify"})


FACT = Question(1, "What's the alternate?", "fact", ("46.900",), ("44.175",))
COMPOUND = Question(2, "Cordon and ICP?", "compound",
                    ("200 m | two hundred metres", "cleared ground"))
ALTERNATIVES = Question(3, "Speed in dust?", "fact", ("3 km/h | 3 kph | three kilometres",))
UNKNOWN = Question(4, "What's the commander's dog called?", "unknown")


@pytest.mark.parametrize(("question", "reply", "passed", "why"), [
    (FACT, "The alternate is 46.900 MHz.", True, "all facts"),
    (FACT, "The alternate is 46.9 MHz.", True, "all facts"),  # the same frequency
    (FACT, "The alternate is four six decimal nine zero zero.", True, "all facts"),
    (FACT, "The alternate is 46.95 MHz.", False, "invented"),
    (FACT, "The primary is 44.175 MHz; the alternate is 46.900 MHz.", False, "says 44.175"),
    (FACT, "Switch to the alternate.", False, "missing 46.900"),
    (COMPOUND, "The cordon is two hundred metres, the control point 200 m back on cleared "
     "ground.", True, "all facts"),
    (COMPOUND, "The cordon is 200 m.", False, "missing cleared ground"),
    (COMPOUND, "The cordon is 2000 m, on cleared ground.", False, "invented"),
    (ALTERNATIVES, "Three kilometres an hour.", True, "all facts"),
    (ALTERNATIVES, "Expect 3 kph in the dust.", True, "all facts"),
    (ALTERNATIVES, "Expect 3km/h.", True, "all facts"),
    (ALTERNATIVES, "Slow: 25 km/h.", False, "missing 3 km/h"),
    (UNKNOWN, "I do not have that in the mission notes; check with KESTREL 0.", True, "hedged"),
    (UNKNOWN, "I am not certain. Verify with Brandt.", True, "hedged"),
    (UNKNOWN, "The notes do not say.", True, "hedged"),
    (UNKNOWN, "It is called Rex.", False, "invented: states Rex"),
    (UNKNOWN, "I do not have that; it is 12 years old.", False, "invented: states 12"),
    (UNKNOWN, "Check with BULLDOG 2.", False, "answered, not hedged"),
])
def test_verdict(grounds: Grounds, question: Question, reply: str, passed: bool,
                 why: str) -> None:
    result = verdict(question, reply, grounds)
    assert result[0] is passed and why in result[1], result


def test_a_number_inside_another_is_not_the_fact(grounds: Grounds) -> None:
    bingo = Question(5, "Bingo?", "fact", ("25",))
    grounds.add("Fuel at CP3 was 250 L.")  # so 250 is no invented value
    assert verdict(bingo, "Bingo is 250 L.", grounds) == (False, "missing 25")
    assert verdict(bingo, "Bingo is 25 %.", grounds) == (True, "all facts")
    grid = Question(6, "Grid?", "fact", ("4930 7102",))
    assert verdict(grid, "KESTREL 0 is at 33T VM 4930 7102.", grounds)[0]
    assert verdict(grid, "Grid four nine three zero seven one zero two.", grounds)[0]


def test_summary_and_report() -> None:
    results = [Result(FACT, True, "all facts", "46.900 MHz.", "answer", False, 0.9, 420.0),
               Result(UNKNOWN, False, "invented: states Rex", "Rex.", "answer", False, 0.2,
                      610.0, reports=["Flash. Marker at km 9."])]
    data = summary(results, ready_s=12.34)
    assert data["total"] == {"passed": 1, "questions": 2}
    assert data["by_kind"] == {"fact": {"passed": 1, "questions": 1},
                               "unknown": {"passed": 0, "questions": 1}}
    assert data["invented_values"] == 1 and data["ready_s"] == 12.3
    assert data["first_sentence_ms"] == {"p50": 515.0, "max": 610.0}
    text = format_results(results, 12.34)
    assert "FAIL: invented: states Rex" in text and "(report) Flash. Marker at km 9." in text
    assert "total: 1/2 passed (50 %)" in text
