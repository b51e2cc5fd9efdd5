"""The eval harness's arithmetic (accuracy, weighted F1, confusion) and its CSV reader's errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.evaluation import EvalError, format_report, load_samples, score
from twin.messages import EMOTION_LABELS

pytestmark = pytest.mark.unit

HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID\n"


def test_scores_on_a_worked_example() -> None:
    gold = ["happy", "happy", "sad", "sad", "neutral", "neutral"]
    guess = ["happy", "sad", "sad", "sad", "neutral", "happy"]
    scores = score(gold, guess)
    assert scores.accuracy == pytest.approx(4 / 6)
    # happy: P 1/2 R 1/2 F 1/2; sad: P 2/3 R 1 F 0.8; neutral: P 1 R 1/2 F 2/3
    assert scores.per_label_f1 == pytest.approx({"happy": 0.5, "sad": 0.8, "neutral": 2 / 3})
    assert scores.weighted_f1 == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert scores.macro_f1 == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    index = EMOTION_LABELS.index
    assert scores.confusion[index("happy")][index("sad")] == 1
    assert sum(map(sum, scores.confusion)) == 6


def test_meld_labels_are_mapped(tmp_path: Path) -> None:
    data = tmp_path / "meld.csv"
    data.write_text(HEADER + '1,"Oh my God!",Rachel,surprise,positive,0,0\n'
                    "2,Fine.,Ross,joy,positive,0,1\n3,No.,Ross,anger,negative,0,2\n")
    samples = load_samples(data)
    assert [s.label for s in samples] == ["surprised", "happy", "angry"]
    assert samples[0].text == "Oh my God!" and samples[1].speaker == "Ross"


def test_bad_files_name_the_file_row_and_field(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    missing.write_text("Utterance,Emotion\nhi,joy\n")
    with pytest.raises(EvalError, match=r"missing\.csv: missing column\(s\) Sentiment"):
        load_samples(missing)
    label = tmp_path / "label.csv"
    label.write_text(HEADER + "1,hi,A,joy,positive,0,0\n2,hello,A,boredom,neutral,0,1\n")
    with pytest.raises(EvalError, match=r"label\.csv: row 3: Emotion: unknown label 'boredom'"):
        load_samples(label)
    media = tmp_path / "media.csv"
    media.write_text("Utterance,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Audio\n"
                     "hi,joy,positive,0,0,clips/nope.wav\n")
    with pytest.raises(EvalError, match=r"row 2: Audio: no such file"):
        load_samples(media)
    with pytest.raises(EvalError, match="no such file"):
        load_samples(tmp_path / "absent.csv")


def test_format_report_prints_the_confusion_matrix() -> None:
    from twin.evaluation import Report

    report = Report(data="x.csv", samples=2, majority_baseline=0.5)
    report.scores["fused"] = score(["happy", "sad"], ["happy", "happy"])
    text = format_report(report)
    assert "accuracy 0.500" in text and "confusion" in text and "happy" in text


def test_the_cli_names_a_bad_file_and_exits_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from twin.cli import app

    bad = tmp_path / "bad.csv"
    bad.write_text("Utterance,Emotion\nhi,joy\n")
    result = CliRunner().invoke(app, ["eval", "emotion", "--data", str(bad)])
    assert result.exit_code == 2
    assert "bad.csv: missing column(s) Sentiment" in result.output
