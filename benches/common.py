"""Shared benchmark data and reporting.

The corpus is real text already on every machine of this kind: the Python standard library's
source (``.py`` files of the running interpreter, tests included) and Debian's ``/usr/share/doc``
text (plain files and gzip-compressed changelogs). It is gathered once into
``benches/data/corpus.jsonl`` (one JSON string per document) and reused.
"""

from __future__ import annotations

import gzip
import json
import os
import sysconfig
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "data"
CORPUS = DATA_DIR / "corpus.jsonl"
MAX_FILE_BYTES = 4 << 20


def _stdlib_files() -> Iterator[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts or "dist-packages" in path.parts:
            continue
        yield path


def _doc_files() -> Iterator[Path]:
    root = Path("/usr/share/doc")
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


def _read_text(path: Path) -> str | None:
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    if not raw or len(raw) > MAX_FILE_BYTES or b"\x00" in raw[:4096]:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def build_corpus() -> Path:
    """Gather the stdlib source and /usr/share/doc text into CORPUS (once)."""
    if CORPUS.exists():
        return CORPUS
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    tmp = CORPUS.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for path in [*_stdlib_files(), *_doc_files()]:
            text = _read_text(path)
            if text and text.strip():
                out.write(json.dumps(text) + "\n")
    os.replace(tmp, CORPUS)
    return CORPUS


def load_corpus(min_mb: float = 0.0, max_mb: float | None = None) -> list[str]:
    """Documents of the benchmark corpus; repeated whole if needed to reach ``min_mb`` MB."""
    docs = [json.loads(line) for line in build_corpus().open(encoding="utf-8")]
    size = sum(len(d.encode()) for d in docs)
    out = list(docs)
    while size * (len(out) // len(docs)) < min_mb * 1e6:
        out.extend(docs)
    if max_mb is not None:
        kept, total = [], 0
        for d in out:
            total += len(d.encode())
            if total > max_mb * 1e6:
                break
            kept.append(d)
        out = kept
    return out


def mbytes(texts: list[str]) -> float:
    return sum(len(t.encode()) for t in texts) / 1e6


def best_time(fn: Callable[[], Any], repeat: int = 3) -> float:
    """Best wall time of ``repeat`` runs, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


#: Every line printed by :func:`report` in this process, for ``benches/run.py --out``.
REPORTED: list[str] = []


def report(name: str, ours: float, peer: float, peer_name: str, unit: str = "MB/s") -> str:
    """One ``name  ours  peer  ratio`` line (throughputs: higher is better)."""
    ratio = ours / peer if peer else float("inf")
    line = (
        f"{name:<44} ours {ours:10.2f} {unit:<5} {peer_name:<22} {peer:10.2f} {unit:<5} ratio {ratio:7.2f}x"
    )
    print(line, flush=True)
    REPORTED.append(line)
    return line
