from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_server import FakeServer

from phicorpus.config import GenerateConfig, ModelPrice


def write_prompts(
    path: Path, n: int, fmt: str = "textbook", *, messages_form: bool = True, words: list[str] | None = None
) -> Path:
    rows: dict[str, list[Any]] = {
        "id": [],
        "format": [],
        "topic_id": [],
        "subject": [],
        "audience": [],
        "style": [],
        "features": [],
        "words": [],
        "expected_tokens": [],
    }
    if messages_form:
        rows["messages"] = []
    else:
        rows["system"] = []
        rows["user"] = []
    for i in range(n):
        user = f"{'EXERCISE ' if fmt == 'exercises' else ''}Write about topic {i} for a {fmt}."
        rows["id"].append(f"p{i:05d}")
        rows["format"].append(fmt)
        rows["topic_id"].append(f"t{i % 7}")
        rows["subject"].append("math")
        rows["audience"].append("high school")
        rows["style"].append("plain")
        rows["features"].append([])
        rows["words"].append(words or [])
        rows["expected_tokens"].append(60)
        if messages_form:
            rows["messages"].append(
                json.dumps([{"role": "system", "content": "You write."}, {"role": "user", "content": user}])
            )
        else:
            rows["system"].append("You write.")
            rows["user"].append(user)
    pq.write_table(pa.table(rows), path)
    return path


def fast_config(**kw: Any) -> GenerateConfig:
    base: dict[str, Any] = {
        "max_tokens": 100,
        "concurrency": 8,
        "max_concurrency": 64,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
        "max_attempts": 4,
        "request_timeout": 5.0,
        "timeout_per_token": 0.0,
        "unreachable_wait": 1.0,
        "flush_every": 10,
        "flush_seconds": 0.5,
        "min_chars": 20,
        "endpoint_rest": 0.05,
        "prices": {"m": ModelPrice(1.0, 10.0)},
    }
    base.update(kw)
    return GenerateConfig(**base)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as s:
        yield s
