from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from phicorpus.generate.journal import JournalError, RequestJournal, read_records


def test_group_commit_and_replay(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"

    async def main() -> RequestJournal:
        journal = RequestJournal.open(path)
        await asyncio.gather(
            *(journal.append({"t": "send", "key": f"k{i}", "attempt": 1}) for i in range(100))
        )
        await asyncio.gather(
            *(journal.append({"t": "result", "key": f"k{i}", "text": "x"}) for i in range(50))
        )
        return journal

    journal = asyncio.run(main())
    assert journal.records_written == 150
    assert journal.syncs < 150  # records share fsyncs
    journal.close()
    again = RequestJournal.open(path)
    assert set(again.results) == {f"k{i}" for i in range(50)}
    assert len(again.state.unresolved) == 50  # sent, never answered: possibly billed
    again.close()


def test_torn_last_line_is_dropped_and_appends_stay_whole(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with RequestJournal.open(path) as journal:
        journal.append_now([{"t": "result", "key": "a", "text": "x"}])
    with open(path, "ab") as fh:
        fh.write(b'{"t": "result", "key": "b", "te')  # kill -9 in the middle of a write
    with RequestJournal.open(path) as journal:
        assert set(journal.results) == {"a"}
        journal.append_now([{"t": "result", "key": "c", "text": "y"}])
    records, good = read_records(path)
    assert [r["key"] for r in records] == ["a", "c"]
    assert good == path.stat().st_size


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with RequestJournal.open(path), pytest.raises(JournalError, match="another run"):
        RequestJournal.open(path)
