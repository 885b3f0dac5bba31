"""``stream_text_buffers`` (the tokenize stage's read-ahead) against ``read_text_buffers``: the
same rows, in the same order, whatever the pieces; None where the rows must be read whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from phicorpus import corpus as corpus_mod
from phicorpus.corpus import Corpus, read_text_buffers, stream_text_buffers


def _texts(buffers: tuple[np.ndarray, np.ndarray]) -> list[str]:
    offsets, data = buffers
    raw = data.tobytes()
    return [raw[offsets[i] : offsets[i + 1]].decode() for i in range(len(offsets) - 1)]


@pytest.fixture()
def shard(tmp_path: Path) -> tuple[Corpus, str, list[str]]:
    corpus = Corpus.create(tmp_path / "c")
    texts = [f"doc {i} " + "é∑ " * (i % 17) + "x" * (i % 300) for i in range(5000)]
    path = corpus.root / "docs" / "s" / "part-00000.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(
        pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}), path, row_group_size=1500
    )
    return corpus, corpus.relative(path), texts


@pytest.mark.parametrize("rows", [None, "all", "some", "none", "last"])
def test_pieces_hold_the_rows_read_whole(
    shard: tuple[Corpus, str, list[str]], rows: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus, file, texts = shard
    monkeypatch.setattr(corpus_mod, "PIECE_BYTES", 4096)  # many pieces, several per row group
    picked: list[int] | None = {
        None: None,
        "all": list(range(len(texts))),
        "some": [i for i in range(len(texts)) if i % 7 in (0, 3) or 1490 <= i <= 1510],
        "none": [],
        "last": [len(texts) - 1],
    }[rows]
    stream = stream_text_buffers(corpus, file, picked)
    assert stream is not None
    pieces = list(stream)
    if picked is None or len(picked) > 100:
        assert len(pieces) > 10
    got = [t for piece in pieces for t in _texts(piece)]
    if picked == []:
        assert got == []
        return
    whole = read_text_buffers(corpus, file, picked)
    assert whole is not None
    assert got == _texts(whole) == [texts[i] for i in (picked if picked is not None else range(len(texts)))]


def test_rows_out_of_order_or_nulls_are_read_whole(
    tmp_path: Path, shard: tuple[Corpus, str, list[str]]
) -> None:
    corpus, file, _ = shard
    assert stream_text_buffers(corpus, file, [5, 3]) is None
    assert stream_text_buffers(corpus, file, [3, 3]) is None
    path = corpus.root / "docs" / "s" / "nulls.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["x", None]}), path)
    assert stream_text_buffers(corpus, corpus.relative(path), None) is None


def test_a_torn_file_raises_from_the_iterator(shard: tuple[Corpus, str, list[str]]) -> None:
    corpus, file, _ = shard
    path = corpus.absolute(file)
    data = path.read_bytes()
    footer = data[-(8 + int.from_bytes(data[-8:-4], "little")) :]
    # the footer stays readable; the pages in the middle are garbage
    path.write_bytes(data[:200] + bytes(len(data) - 200 - len(footer)) + footer)
    stream = stream_text_buffers(corpus, file, None)
    assert stream is not None
    with pytest.raises((OSError, pa.ArrowException)):
        list(stream)
