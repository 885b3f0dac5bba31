"""The phi-1 educational-value classifier: LLM (or file) labels 0-5 on a sample, a linear model
over hashed word n-grams trained in Rust (averaged SGD, deterministic), scores for every document.

Example:
    >>> model = train_classifier(["a proof of the lemma"] * 4 + ["buy now"] * 4, [5.0] * 4 + [0.0] * 4)
    >>> bool(model.score(["the lemma and its proof"])[0] > model.score(["buy now cheap"])[0])
    True
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from phicorpus import _core
from phicorpus.catalog import Catalog
from phicorpus.corpus import Corpus, atomic_path, publish_bytes

if TYPE_CHECKING:
    from phicorpus.corpus import Texts

__all__ = ["EduModel", "evaluate", "labels_path", "load_labels", "publish_labels", "train_classifier"]


@dataclass(frozen=True)
class EduModel:
    """Weights over ``2**bits`` hashed n-gram buckets, a bias, the n-gram size, held-out metrics."""

    weights: npt.NDArray[np.float32]
    bias: float
    ngram: int
    metrics: dict[str, float] = field(default_factory=dict)

    def score(self, texts: Texts, num_threads: int | None = None) -> npt.NDArray[np.float32]:
        """Predicted edu scores (about 0-5) of ``texts`` (str, or Arrow buffers), in parallel in Rust."""
        return _core.edu_score(texts, self.weights, self.bias, self.ngram, num_threads)

    def save(self, path: str | Path) -> None:
        """Write the model as ``.npz`` atomically."""
        buf = io.BytesIO()
        np.savez(
            buf,
            weights=self.weights,
            bias=np.float32(self.bias),
            ngram=np.int64(self.ngram),
            metrics=np.array(json.dumps(self.metrics)),
        )
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> EduModel:
        with np.load(path) as data:
            return cls(
                np.ascontiguousarray(data["weights"], dtype=np.float32),
                float(data["bias"]),
                int(data["ngram"]),
                json.loads(str(data["metrics"])),
            )


def train_classifier(
    texts: Sequence[str],
    labels: Sequence[float] | npt.NDArray[Any],
    *,
    bits: int = 18,
    ngram: int = 2,
    epochs: int = 8,
    seed: int = 0,
) -> EduModel:
    """Fit the linear model to ``texts`` scored ``labels`` (0-5)."""
    y = np.ascontiguousarray(labels, dtype=np.float32)
    weights, bias = _core.edu_train(list(texts), y, bits=bits, ngram=ngram, epochs=epochs, seed=seed)
    return EduModel(weights, float(bias), ngram)


def evaluate(
    model: EduModel, texts: Sequence[str], labels: Sequence[float], threshold: float = 3.0
) -> dict[str, float]:
    """Held-out metrics: accuracy, precision, recall and F1 of ``score >= threshold``, and MAE."""
    y = np.asarray(labels, dtype=np.float64)
    pred = model.score(list(texts)).astype(np.float64)
    truth, guess = y >= threshold, pred >= threshold
    tp = float(np.sum(truth & guess))
    precision = tp / max(float(guess.sum()), 1.0)
    recall = tp / max(float(truth.sum()), 1.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": float(np.mean(truth == guess)) if len(y) else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "mae": float(np.mean(np.abs(pred - y))) if len(y) else 0.0,
        "n": float(len(y)),
    }


def load_labels(path: str | Path) -> dict[str, float]:
    """``{document id: score}`` from a JSONL file of ``{"id": ..., "score": 0-5}`` records.

    Raises:
        ValueError: a line is not such a record (the message names file and line).
    """
    out: dict[str, float] = {}
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                score = float(record["score"])
                doc_id = str(record["id"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise ValueError(f'{path}:{number}: expected {{"id": ..., "score": 0-5}} ({exc})') from exc
            if not 0 <= score <= 5:
                raise ValueError(f"{path}:{number}: score {score} is not in 0-5")
            out[doc_id] = score
    return out


def labels_path(corpus: Corpus) -> Path:
    """Where ``classifier annotate`` stores the labels and ``classifier train`` reads them."""
    return corpus.root / "models" / "edu_labels.jsonl"


def publish_labels(corpus: Corpus, labels: dict[str, float], origin: str) -> Path:
    """Write ``labels`` as the corpus's labels file (JSONL, sorted by id), atomically, and register it.

    Args:
        corpus: the corpus the labelled documents belong to.
        labels: ``{document id: score 0-5}``.
        origin: what the labels came from, for the error message (a file name, a judge model).

    Raises:
        ValueError: an id is not a document of the corpus (nothing is written then).

    Example:
        >>> publish_labels(corpus, {"code/0a1b": 4.0}, "judge.jsonl")  # doctest: +SKIP
        PosixPath('.../models/edu_labels.jsonl')
    """
    target = labels_path(corpus)
    lines = "".join(json.dumps({"id": k, "score": v}) + "\n" for k, v in sorted(labels.items()))
    with Catalog.open(corpus) as catalog:
        known = {r[0] for r in catalog.exec("SELECT id FROM documents")}
        missing = [k for k in labels if k not in known]
        if missing:
            raise ValueError(f"{origin}: {len(missing)} ids not in the corpus, e.g. {missing[0]}")
        publish_bytes(target, lines.encode())
        catalog.register_shard(
            target,
            "labels",
            rows=len(labels),
            stage="classifier",
        )
    return target
