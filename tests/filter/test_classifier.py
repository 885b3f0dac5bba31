"""The edu classifier: learns a planted signal, deterministic, held-out metrics, save/load."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from phicorpus.filter.classifier import EduModel, evaluate, load_labels, train_classifier

GOOD = [
    "theorem",
    "proof",
    "lemma",
    "definition",
    "example",
    "exercise",
    "explain",
    "derive",
    "because",
    "therefore",
]
BAD = ["click", "buy", "now", "cheap", "offer", "free", "shipping", "login", "subscribe", "deal"]
FILLER = ["the", "a", "of", "and", "to", "in", "is", "it", "that", "this", "with", "for", "on", "as"]


def _docs(n: int, seed: int) -> tuple[list[str], list[float]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        score = rng.choice([0, 1, 2, 3, 4, 5])
        words = [rng.choice(GOOD if rng.random() < score / 5 else BAD) for _ in range(10)]
        words += [rng.choice(FILLER) for _ in range(20)]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(float(score))
    return texts, labels


def test_learns_and_generalizes(tmp_path: Path) -> None:
    texts, labels = _docs(1500, 0)
    model = train_classifier(texts, labels)
    test_texts, test_labels = _docs(400, 1)
    metrics = evaluate(model, test_texts, test_labels)
    assert metrics["f1"] > 0.85 and metrics["accuracy"] > 0.85, metrics
    again = train_classifier(texts, labels)
    assert np.array_equal(model.weights, again.weights) and model.bias == again.bias
    model.save(tmp_path / "m.npz")
    loaded = EduModel.load(tmp_path / "m.npz")
    assert np.array_equal(loaded.score(test_texts), model.score(test_texts))


def test_labels_file_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    path.write_text('{"id": "a", "score": 4}\n{"id": "b"}\n')
    with pytest.raises(ValueError, match=r"l.jsonl:2"):
        load_labels(path)
    path.write_text('{"id": "a", "score": 4}\n')
    assert load_labels(path) == {"a": 4.0}
