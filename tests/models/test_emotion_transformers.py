"""The configurable transformers backends of the text and voice estimators, loaded from local
folders the way a user's own emotion model would be. No emotion classifier is available offline,
so the test builds two tiny random-weight ones (a BERT text classifier and a wav2vec2 audio
classifier, with emotion labels in another naming) and checks the real loading and label mapping
code — not their accuracy. Nothing touches a model hub."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from twin.messages import EMOTION_LABELS

pytestmark = pytest.mark.models

transformers = pytest.importorskip("transformers")
pytest.importorskip("torch")

LABELS = ["joy", "anger", "neutral", "sadness", "fear", "disgust", "surprise", "optimism"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        BertTokenizer,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForSequenceClassification,
    )

    folder = tmp_path_factory.mktemp("hf")
    ids = {"id2label": dict(enumerate(LABELS)), "label2id": {k: i for i, k in enumerate(LABELS)}}
    text = folder / "text"
    text.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "route", "is", "clear"]
    (text / "vocab.txt").write_text("\n".join(vocab))
    BertTokenizer(str(text / "vocab.txt")).save_pretrained(text)
    BertForSequenceClassification(BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64, **ids)).save_pretrained(text)
    audio = folder / "audio"
    Wav2Vec2ForSequenceClassification(Wav2Vec2Config(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, classifier_proj_size=8, **ids)).save_pretrained(audio)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000).save_pretrained(audio)
    return {"text": text, "audio": audio}


def test_text_classifier_from_a_local_folder(models: dict[str, Path]) -> None:
    from actors.emotion.text import TransformersTextEstimator

    estimator = TransformersTextEstimator(str(models["text"]))
    estimate = estimator.estimate("the route is clear")
    assert estimate.available and estimate.modality == "text"
    assert set(estimate.probabilities) == set(EMOTION_LABELS)  # "optimism" is not ours: dropped
    assert sum(estimate.probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    assert not estimator.estimate("").available


def test_audio_classifier_from_a_local_folder(models: dict[str, Path]) -> None:
    from actors.emotion.voice import TransformersVoiceEstimator

    estimator = TransformersVoiceEstimator(str(models["audio"]))
    noise = (np.random.default_rng(0).standard_normal(24000) * 0.1).astype(np.float32)
    estimate = estimator.estimate(noise)
    assert estimate.available and estimate.modality == "voice"
    assert set(estimate.probabilities) == set(EMOTION_LABELS)
    assert not estimator.estimate(noise[:1000]).available  # too short


def test_a_hub_id_needs_allow_download() -> None:
    from actors.emotion.text import TransformersTextEstimator
    from twin.models import ModelError

    with pytest.raises(ModelError, match="allow_download"):
        TransformersTextEstimator("someone/an-emotion-model")


def test_the_modeler_runs_the_configured_backends(models: dict[str, Path]) -> None:
    from actors.emotion.modeler import EmotionModeler
    from twin.messages import EmotionEstimate, Transcript
    from twin.testing import Harness

    settings = {"text": {"backend": "transformers", "model": str(models["text"])},
                "voice": {"backend": "transformers", "model": str(models["audio"])},
                "modalities": ["text", "voice"]}

    async def scenario() -> None:
        async with Harness(EmotionModeler(settings, name="emotion")) as harness:
            await harness.send(Transcript(text="the route is clear", final=True, start=0.0,
                                          end=1.0, turn=1), source="speech")
            estimate = await harness.wait_for(EmotionEstimate, timeout=60)
        by = {m.modality: m for m in estimate.modalities}
        assert by["text"].available and by["text"].note == str(models["text"])
        assert not by["voice"].available  # no audio was sent
        assert not by["face"].available and by["face"].note == "not enabled"

    asyncio.run(scenario())
