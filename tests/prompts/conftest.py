"""Small topic directories written in the test session (the real seeds are not needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from phicorpus.config import PromptsConfig
from phicorpus.topics import Topic, load_topics

WORDS = ["quartz", "maple", "orbit", "lattice", "delta", "prism", "signal", "vector", "harbor", "ember"]


def write_topics(root: Path, subjects: dict[str, int], *, leaves_per_unit: int = 5) -> Path:
    """One file per subject slug with ``n`` leaves, 5 per unit, 3 units per course."""
    root.mkdir(parents=True, exist_ok=True)
    for slug, n in subjects.items():
        name = slug.replace("-", " ").capitalize()
        lines = [f"# {name}", ""]
        for i in range(n):
            if i % (leaves_per_unit * 3) == 0:
                lines += [f"## {name} course {i // (leaves_per_unit * 3)}", ""]
            if i % leaves_per_unit == 0:
                lines += [f"### {name} unit {i // leaves_per_unit}", ""]
            lines.append(
                f"- {name} leaf {i} on {WORDS[i % len(WORDS)]} {WORDS[(i // 10) % len(WORDS)]} ideas"
            )
        (root / f"{slug}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def topics_dir(tmp_path: Path) -> Path:
    return write_topics(tmp_path / "topics", {"algebra": 30, "biology": 45, "python-basics": 15})


@pytest.fixture
def topics(topics_dir: Path) -> list[Topic]:
    return load_topics(topics_dir)


@pytest.fixture
def config(topics_dir: Path) -> PromptsConfig:
    return PromptsConfig(topics_dir=str(topics_dir))
