"""bioS: unique people, attributes stated exactly, augmentations, determinism, corpus writing."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from phicorpus.catalog import Catalog
from phicorpus.corpus import Corpus
from phicorpus.sources.bios import (
    ATTRIBUTES,
    MIN_TEMPLATES,
    BiosDataError,
    generate_bios,
    load_pools,
    parse_templates,
    write_bios,
)

SENTENCE_END = re.compile(r"(?<=\.)(?<!St\.) (?=[A-Z])")  # "St. Louis, MO" is one sentence
PRONOUNS = re.compile(r"\b(he|she|they|him|her|them|his|their)\b", re.IGNORECASE)


def test_pools_are_realistic_and_large() -> None:
    pools = load_pools()
    assert len(pools.cities) >= 200 and len(pools.universities) >= 300
    assert len(pools.majors) >= 100 and len(pools.employers) >= 290
    assert all(len(pools.templates[a]) >= MIN_TEMPLATES for a in ATTRIBUTES)
    assert len(pools.last_names) >= 1000 and sum(len(v) for v in pools.first_names.values()) >= 450


def test_every_biography_states_each_attribute_exactly() -> None:
    docs, qa = generate_bios(300, seed=3, multi=3, permute=True)
    assert docs.num_rows == 900 and qa.num_rows == 300 * len(ATTRIBUTES)
    for row in docs.to_pylist():
        sentences = SENTENCE_END.split(row["text"])
        assert len(sentences) == len(ATTRIBUTES)
        for attribute in ATTRIBUTES:
            assert row[attribute] in row["text"], (attribute, row["text"])
        assert row["text"].startswith(row["name"]) or row["name"] in sentences[0]
    answers = {(r["person_id"], r["attribute"]): r["answer"] for r in qa.to_pylist()}
    for row in docs.to_pylist():
        for attribute in ATTRIBUTES:
            assert answers[(row["person_id"], attribute)] == row[attribute]


def test_names_unique_and_employer_city_matches() -> None:
    docs, _ = generate_bios(5000, seed=1)
    names = docs.column("name").to_pylist()
    assert len(set(names)) == 5000
    employers = dict(load_pools().employers)
    for row in docs.slice(0, 500).to_pylist():
        assert employers[row["employer"]] == row["employer_city"]
    assert Counter(docs.column("gender").to_pylist())["nonbinary"] > 0


def test_multi_variants_differ_and_pronouns() -> None:
    docs, _ = generate_bios(50, seed=2, multi=4)
    by_person: dict[str, list[str]] = {}
    for row in docs.to_pylist():
        by_person.setdefault(row["person_id"], []).append(row["text"])
        first, *rest = SENTENCE_END.split(row["text"])
        assert row["name"] in first
        assert all(row["name"] not in s for s in rest)  # later sentences use pronouns
        if row["gender"] == "nonbinary":  # verbs agree with "they"
            assert not re.search(r"\bthey (was|is|has)\b", row["text"], re.IGNORECASE), row["text"]
            assert re.search(r"\b[Tt]hey\b", " ".join(rest))
    assert all(len(set(texts)) == 4 for texts in by_person.values())


def test_fullname_has_no_pronouns() -> None:
    docs, _ = generate_bios(100, seed=4, fullname=True)
    for row in docs.to_pylist():
        sentences = SENTENCE_END.split(row["text"])
        assert all(row["name"] in s for s in sentences)
        assert not PRONOUNS.search(row["text"].replace(row["name"], "")), row["text"]


def test_permute_changes_order_and_fixed_order_does_not() -> None:
    def first_attribute(rows: list[dict[str, str]]) -> Counter[str]:
        return Counter(next(a for a in ATTRIBUTES if r[a] in r["text"].split(". ")[0]) for r in rows)

    fixed, _ = generate_bios(200, seed=5)
    assert first_attribute(fixed.to_pylist()).most_common(1)[0] == ("birth_date", 200)
    permuted, _ = generate_bios(200, seed=5, permute=True)
    assert len(first_attribute(permuted.to_pylist())) == len(ATTRIBUTES)


def test_deterministic_by_seed() -> None:
    a = generate_bios(100, seed=7, multi=2, permute=True)
    b = generate_bios(100, seed=7, multi=2, permute=True)
    c = generate_bios(100, seed=8, multi=2, permute=True)
    assert a[0].equals(b[0]) and a[1].equals(b[1])
    assert a[0].column("text").to_pylist() != c[0].column("text").to_pylist()
    ids = a[0].column("id").to_pylist()
    assert len(set(ids)) == 200 and all(re.fullmatch(r"bios/[0-9a-f]{16}", i) for i in ids)


def test_write_bios_registers_and_is_idempotent(tmp_path: Path) -> None:
    corpus = Corpus.create(tmp_path / "corpus")
    stats = write_bios(corpus, 120, seed=1, multi=2, rows_per_shard=100)
    assert stats == {"people": 120, "documents": 240, "shards": 3, "qa_pairs": 720, "skipped": False}
    assert write_bios(corpus, 120, seed=1, multi=2, rows_per_shard=100)["skipped"] is True
    with Catalog.open(corpus, read_only=True) as catalog:
        docs = catalog.shards("docs", "bios")
        assert [s.rows for s in docs] == [100, 100, 40]
        assert [(s.path, s.rows) for s in catalog.shards("qa", "bios")] == [("qa/bios.parquet", 720)]
        rows = catalog.exec("SELECT id, file, \"row\", kind FROM documents WHERE source = 'bios' ORDER BY id")
    assert len(rows) == 240 and {r[3] for r in rows} == {"bios"}
    # Only documents under docs/bios/: one schema for the docs/*/*.parquet glob.
    names = sorted(p.name for p in corpus.docs_dir("bios").iterdir())
    assert names == [f"part-0000{i}.parquet" for i in range(3)]
    for doc_id, file, row, _ in rows[:20]:
        assert pq.read_table(corpus.absolute(file)).column("id")[row].as_py() == doc_id
    with pytest.raises(ValueError, match="other parameters"):
        write_bios(corpus, 50, seed=2)


def test_write_bios_resumes_after_a_crash(tmp_path: Path) -> None:
    corpus = Corpus.create(tmp_path / "corpus")
    with Catalog.open(corpus) as catalog:  # a run that died after its first shard
        catalog.start_stage("bios:bios", {})
    write_bios(corpus, 60, seed=3, rows_per_shard=25)
    with Catalog.open(corpus) as catalog:
        catalog.exec("DELETE FROM stage_runs")
        last = catalog.shards("docs", "bios")[-1].path
        catalog.exec("DELETE FROM shards WHERE path = ?", [last])
        catalog.exec("DELETE FROM documents WHERE file = ?", [last])
    stats = write_bios(corpus, 60, seed=3, rows_per_shard=25)
    assert stats["documents"] == 60
    with Catalog.open(corpus, read_only=True) as catalog:
        count = catalog.exec_one("SELECT count(*), count(DISTINCT id) FROM documents")
    assert count == (60, 60)


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("[birth_date]\n{Subject} was born.\n", 2, r"needs \{value\} exactly once"),
        ("[birth_date]\n{Subject} was born on {date}.\n", 2, r"unknown slot \{date\}"),
        ("# c\n[birthday]\n", 2, r"unknown section \[birthday\]"),
        ("{Subject} was born on {value}.\n", 1, "before any"),
        ("[birth_date]\nBorn on {value}.\n", 2, "must name the person"),
        ("[birth_date]\n{Subject} [was|were born on {value}.\n", 2, "malformed verb choice"),
        ("[birth_date]\n{Subject} [was|were] born on {value}.\n", 1, r"\[birth_date\] has 1 templates"),
    ],
)
def test_malformed_templates_name_file_and_line(
    tmp_path: Path, content: str, line: int, message: str
) -> None:
    path = tmp_path / "templates.txt"
    path.write_text(content)
    with pytest.raises(BiosDataError, match=rf"templates\.txt:{line}: .*{message}"):
        parse_templates(path)
