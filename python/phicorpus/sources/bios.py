"""bioS: the synthetic biography corpus of Physics of Language Models 3.1 (offline source ``bios``).

N people, each with a unique full name and six attributes drawn from hand-written pools in
``sources/data/bios/``: birth date, birth city, university, major, employer and the employer's
city. A biography states each attribute in one sentence drawn from at least 50 templates per
attribute (``templates.txt``). The paper's augmentations are options:

- ``multi=M``: M biographies per person, each with freshly drawn templates;
- ``permute``: the six sentences in a random order;
- ``fullname``: the full name in every sentence (otherwise the first sentence names the person
  and later ones use he/she/they, from the person's gender).

Beside the biographies, one question-answer pair per person and attribute, for evaluating
knowledge extraction. Everything is deterministic in ``seed``.

Example:
    >>> docs, qa = generate_bios(3, seed=1, multi=2)
    >>> docs.num_rows, qa.num_rows
    (6, 18)
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from phicorpus.corpus import Corpus, atomic_path, cheap_file_problem

__all__ = [
    "ATTRIBUTES",
    "QUESTIONS",
    "BiosDataError",
    "BiosPools",
    "generate_bios",
    "load_pools",
    "parse_templates",
    "write_bios",
]

ATTRIBUTES = ("birth_date", "birth_city", "university", "major", "employer", "employer_city")
QUESTIONS = {
    "birth_date": "What is the birth date of {name}?",
    "birth_city": "What is the birth city of {name}?",
    "university": "Which university did {name} study?",
    "major": "What major did {name} study?",
    "employer": "Which company did {name} work for?",
    "employer_city": "Where did {name} work?",
}
MIN_TEMPLATES = 50
ROWS_PER_SHARD = 50_000
_GENDERS = ("male", "female", "nonbinary")
_GENDER_P = (0.48, 0.48, 0.04)
_PRONOUNS = {  # subject, object, possessive
    "male": ("he", "him", "his"),
    "female": ("she", "her", "her"),
    "nonbinary": ("they", "them", "their"),
}
_SLOT = re.compile(r"\{(\w+)\}")
_VERB = re.compile(r"\[([^\[\]|]+)\|([^\[\]|]+)\]")
_SLOTS = frozenset({"value", "subject", "Subject", "object", "possessive", "Possessive"})
_PERSON_SLOTS = _SLOTS - {"value"}
_BIRTH_YEARS = (1940, 2005)


class BiosDataError(ValueError):
    """A bioS data file is malformed; the message starts with ``file:line:``."""


@dataclass(frozen=True, slots=True)
class BiosTemplate:
    """One sentence template, split into literal text, slots and singular/plural verb choices."""

    text: str
    tokens: tuple[tuple[int, str, str], ...]
    """``(0, text, "")`` literal, ``(1, slot, "")`` slot, ``(2, singular, plural)`` verb choice."""

    @classmethod
    def parse(cls, text: str) -> BiosTemplate:
        tokens: list[tuple[int, str, str]] = []
        for piece in re.split(r"(\{\w+\}|\[[^\[\]|]+\|[^\[\]|]+\])", text):
            if not piece:
                continue
            if piece.startswith("{"):
                tokens.append((1, piece[1:-1], ""))
            elif piece.startswith("[") and "|" in piece:
                singular, plural = piece[1:-1].split("|")
                tokens.append((2, singular, plural))
            else:
                tokens.append((0, piece, ""))
        return cls(text, tuple(tokens))

    def fill(
        self, value: str, named: Mapping[str, str] | None, pronoun: Mapping[str, str], plural: bool
    ) -> str:
        """The sentence about one person.

        With ``named``, the first mention of the person uses those (full-name) forms and later
        mentions in the sentence the pronoun forms; a verb choice agrees with the last subject
        before it (a name is singular; ``they`` is plural).
        """
        out = []
        names = named
        subject_plural = False
        for kind, a, b in self.tokens:
            if kind == 0:
                out.append(a)
            elif kind == 2:
                out.append(b if subject_plural else a)
            elif a == "value":
                out.append(value)
            else:
                forms = names if names is not None else pronoun
                if a in ("subject", "Subject"):
                    subject_plural = plural and names is None
                out.append(forms[a])
                names = None
        return "".join(out)


@dataclass(frozen=True, slots=True)
class BiosPools:
    """The attribute pools and sentence templates."""

    first_names: dict[str, tuple[str, ...]]
    """By gender (``male``, ``female``, ``nonbinary``)."""
    last_names: tuple[str, ...]
    cities: tuple[str, ...]
    universities: tuple[str, ...]
    majors: tuple[str, ...]
    employers: tuple[tuple[str, str], ...]
    """(employer, its city)."""
    templates: dict[str, tuple[BiosTemplate, ...]]


def _data_dir() -> Path:
    return Path(str(files("phicorpus.sources").joinpath("data").joinpath("bios")))


def _lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BiosDataError(f"{path}:0: cannot read ({exc})") from exc
    out = []
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = "" if raw.lstrip().startswith("#") else raw.strip()  # '#' starts a comment line
        if line:
            out.append((lineno, line))
    return out


def _unique_list(path: Path, columns: int = 1) -> list[tuple[str, ...]]:
    seen: dict[str, int] = {}
    rows = []
    for lineno, line in _lines(path):
        fields = tuple(f.strip() for f in line.split("\t"))
        if len(fields) != columns or not all(fields):
            raise BiosDataError(f"{path}:{lineno}: expected {columns} tab-separated field(s), got {line!r}")
        if fields[0] in seen:
            raise BiosDataError(f"{path}:{lineno}: duplicate {fields[0]!r} (first at line {seen[fields[0]]})")
        seen[fields[0]] = lineno
        rows.append(fields)
    if not rows:
        raise BiosDataError(f"{path}:0: empty pool")
    return rows


def parse_templates(path: str | Path) -> dict[str, tuple[BiosTemplate, ...]]:
    """Parse a sectioned template file: ``[attribute]`` headings, one sentence template per line.

    Slots: ``{value}`` (exactly once), and the person as ``{subject}``/``{Subject}`` (name or
    he/she/they, capitalised), ``{object}``, ``{possessive}``/``{Possessive}`` (name's or
    his/her/their); ``[was|were]`` picks the verb form for a singular or a plural (they) subject.

    Raises:
        BiosDataError: an unknown section or slot, a template without ``{value}`` or without the
            person, or fewer than :data:`MIN_TEMPLATES` per attribute; names the file and line.
    """
    path = Path(path)
    section: str | None = None
    found: dict[str, list[BiosTemplate]] = {}
    first_line: dict[str, int] = {}
    for lineno, line in _lines(path):
        header = re.fullmatch(r"\[(\w+)\]", line)
        if header:
            section = header.group(1)
            if section not in ATTRIBUTES:
                raise BiosDataError(
                    f"{path}:{lineno}: unknown section [{section}] (expected {', '.join(ATTRIBUTES)})"
                )
            if section in found:
                raise BiosDataError(f"{path}:{lineno}: section [{section}] appears twice")
            found[section] = []
            first_line[section] = lineno
            continue
        if section is None:
            raise BiosDataError(f"{path}:{lineno}: template before any [attribute] section")
        slots = _SLOT.findall(line)
        bad = [s for s in slots if s not in _SLOTS]
        if bad:
            raise BiosDataError(
                f"{path}:{lineno}: unknown slot {{{bad[0]}}} (known: {', '.join(sorted(_SLOTS))})"
            )
        if slots.count("value") != 1:
            raise BiosDataError(f"{path}:{lineno}: a template needs {{value}} exactly once")
        if not _PERSON_SLOTS & set(slots):
            raise BiosDataError(
                f"{path}:{lineno}: a template must name the person ({{subject}}, {{possessive}}, ...)"
            )
        if "[" in _VERB.sub("", line) or "]" in _VERB.sub("", line):
            raise BiosDataError(f"{path}:{lineno}: malformed verb choice (expected [singular|plural])")
        found[section].append(BiosTemplate.parse(line))
    for attribute in ATTRIBUTES:
        got = found.get(attribute, [])
        if len(got) < MIN_TEMPLATES:
            where = first_line.get(attribute, 0)
            raise BiosDataError(
                f"{path}:{where}: [{attribute}] has {len(got)} templates, expected at least {MIN_TEMPLATES}"
            )
    return {a: tuple(found[a]) for a in ATTRIBUTES}


def load_pools(directory: str | Path | None = None) -> BiosPools:
    """Load and check the pools and templates of a data directory (default: the packaged one)."""
    return _load_pools(str(directory or _data_dir()))


@lru_cache(maxsize=4)
def _load_pools(directory: str) -> BiosPools:
    root = Path(directory)
    first: dict[str, list[str]] = {g: [] for g in _GENDERS}
    path = root / "first_names.tsv"
    for lineno, (name, gender) in zip((ln for ln, _ in _lines(path)), _unique_list(path, 2), strict=True):
        if gender not in first:
            raise BiosDataError(
                f"{path}:{lineno}: gender must be one of {', '.join(_GENDERS)}, got {gender!r}"
            )
        first[gender].append(name)
    for gender, names in first.items():
        if not names:
            raise BiosDataError(f"{path}:0: no first names of gender {gender!r}")
    employers = _unique_list(root / "employers.tsv", 2)
    return BiosPools(
        first_names={g: tuple(v) for g, v in first.items()},
        last_names=tuple(r[0] for r in _unique_list(root / "last_names.txt")),
        cities=tuple(r[0] for r in _unique_list(root / "cities.txt")),
        universities=tuple(r[0] for r in _unique_list(root / "universities.txt")),
        majors=tuple(r[0] for r in _unique_list(root / "majors.txt")),
        employers=tuple((r[0], r[1]) for r in employers),
        templates=parse_templates(root / "templates.txt"),
    )


def _unique_names(
    pools: BiosPools, genders: Sequence[str], rng: np.random.Generator
) -> list[tuple[str, str, str]]:
    """(first, middle, last) per person, full names unique; redraws a collision."""
    all_first = sorted({n for names in pools.first_names.values() for n in names})
    capacity = len(all_first) * (len(all_first) - 1) * len(pools.last_names)
    if len(genders) > capacity // 4:
        raise ValueError(f"bioS: {len(genders)} people is too many for the name pools (capacity {capacity})")
    seen: set[tuple[str, str, str]] = set()
    names = []
    for gender in genders:
        own = pools.first_names[gender]
        middle_pool = own if gender != "nonbinary" else all_first
        while True:
            first = own[int(rng.integers(len(own)))]
            middle = middle_pool[int(rng.integers(len(middle_pool)))]
            last = pools.last_names[int(rng.integers(len(pools.last_names)))]
            key = (first, middle, last)
            if middle != first and key not in seen:
                seen.add(key)
                names.append(key)
                break
    return names


def _birth_dates(n: int, rng: np.random.Generator) -> list[str]:
    years = rng.integers(_BIRTH_YEARS[0], _BIRTH_YEARS[1] + 1, size=n)
    months = rng.integers(1, 13, size=n)
    fractions = rng.random(n)
    out = []
    for y, m, f in zip(years.tolist(), months.tolist(), fractions.tolist(), strict=True):
        day = 1 + int(f * calendar.monthrange(y, m)[1])
        out.append(f"{calendar.month_name[m]} {day}, {y}")
    return out


def _doc_id(source: str, key: str) -> str:
    return f"{source}/{hashlib.blake2b(key.encode('utf-8'), digest_size=8).hexdigest()}"


def generate_bios(
    n_people: int,
    seed: int = 0,
    multi: int = 1,
    permute: bool = False,
    fullname: bool = False,
    *,
    source: str = "bios",
    pools: BiosPools | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Generate the biographies and the question-answer pairs (pure; nothing is written).

    Returns:
        ``(docs, qa)``. ``docs``: one row per biography -- ``id`` (``<source>/<16 hex>``),
        ``text``, ``person_id``, ``variant`` (0..multi-1), ``name``, ``gender`` and the six
        attributes as columns. ``qa``: one row per person and attribute -- ``id``,
        ``person_id``, ``name``, ``attribute``, ``question``, ``answer`` (the attribute exactly).
    """
    if n_people < 0 or multi < 1:
        raise ValueError(f"bioS: n_people must be >= 0 and multi >= 1, got {n_people}, {multi}")
    pools = pools or load_pools()
    rng = np.random.default_rng(seed)
    genders = [_GENDERS[i] for i in rng.choice(len(_GENDERS), size=n_people, p=_GENDER_P).tolist()]
    names = _unique_names(pools, genders, rng)
    dates = _birth_dates(n_people, rng)
    cities = rng.integers(len(pools.cities), size=n_people)
    universities = rng.integers(len(pools.universities), size=n_people)
    majors = rng.integers(len(pools.majors), size=n_people)
    employers = rng.integers(len(pools.employers), size=n_people)
    tpl = pools.templates
    counts = np.array([len(tpl[a]) for a in ATTRIBUTES])
    choices = (rng.random((n_people, multi, len(ATTRIBUTES))) * counts).astype(np.int64)
    orders = (
        np.argsort(rng.random((n_people, multi, len(ATTRIBUTES))), axis=2)
        if permute
        else np.broadcast_to(np.arange(len(ATTRIBUTES)), (n_people, multi, len(ATTRIBUTES)))
    )
    flags = f"multi={multi}|permute={int(permute)}|fullname={int(fullname)}|n={n_people}"
    docs: dict[str, list[Any]] = {
        k: [] for k in ("id", "text", "person_id", "variant", "name", "gender", *ATTRIBUTES)
    }
    qa: dict[str, list[Any]] = {k: [] for k in ("id", "person_id", "name", "attribute", "question", "answer")}
    for p in range(n_people):
        full = " ".join(names[p])
        employer, employer_city = pools.employers[employers[p]]
        values = {
            "birth_date": dates[p],
            "birth_city": pools.cities[cities[p]],
            "university": pools.universities[universities[p]],
            "major": pools.majors[majors[p]],
            "employer": employer,
            "employer_city": employer_city,
        }
        person_id = f"{source}-person/{seed}/{p}"
        subj, obj, poss = _PRONOUNS[genders[p]]
        by_name = {
            "subject": full,
            "Subject": full,
            "object": full,
            "possessive": f"{full}'s",
            "Possessive": f"{full}'s",
        }
        by_pronoun = {
            "subject": subj,
            "Subject": subj.capitalize(),
            "object": obj,
            "possessive": poss,
            "Possessive": poss.capitalize(),
        }
        if fullname:
            by_pronoun = by_name
        plural = genders[p] == "nonbinary" and not fullname
        for v in range(multi):
            sentences = []
            for position, a in enumerate(orders[p, v].tolist()):
                attribute = ATTRIBUTES[a]
                template = tpl[attribute][choices[p, v, a]]
                named = by_name if position == 0 else None
                sentences.append(template.fill(values[attribute], named, by_pronoun, plural))
            docs["id"].append(_doc_id(source, f"bioS|seed={seed}|{flags}|person={p}|variant={v}"))
            docs["text"].append(" ".join(sentences))
            docs["person_id"].append(person_id)
            docs["variant"].append(v)
            docs["name"].append(full)
            docs["gender"].append(genders[p])
            for attribute in ATTRIBUTES:
                docs[attribute].append(values[attribute])
        for attribute in ATTRIBUTES:
            qa["id"].append(_doc_id(f"{source}-qa", f"bioS|seed={seed}|{flags}|person={p}|{attribute}"))
            qa["person_id"].append(person_id)
            qa["name"].append(full)
            qa["attribute"].append(attribute)
            qa["question"].append(QUESTIONS[attribute].format(name=full))
            qa["answer"].append(values[attribute])
    docs_table = pa.table(
        docs, schema=pa.schema([(k, pa.int32() if k == "variant" else pa.string()) for k in docs])
    )
    qa_table = pa.table(qa, schema=pa.schema([(k, pa.string()) for k in qa]))
    return docs_table, qa_table


def write_bios(
    corpus: Corpus,
    n_people: int,
    *,
    seed: int = 0,
    multi: int = 1,
    permute: bool = False,
    fullname: bool = False,
    source: str = "bios",
    rows_per_shard: int = ROWS_PER_SHARD,
) -> dict[str, Any]:
    """Write bioS into ``corpus``: ``docs/<source>/part-NNNNN.parquet`` and ``qa/<source>.parquet``.

    The question-answer pairs (another schema, no document text) live outside ``docs/``, so the
    ``docs/*/*.parquet`` glob reads documents only.

    Each document shard is published atomically, then registered (kind ``docs``) together with
    its ``documents`` rows in one transaction; the QA pairs are registered as kind ``qa``. A
    re-run with the same parameters is skipped; a killed run resumes at the first unregistered
    shard. A corpus whose ``source`` already holds a bioS corpus with other parameters is an error.

    Returns:
        stats: ``people``, ``documents``, ``shards``, ``qa_pairs``, ``skipped``.
    """
    from phicorpus.catalog import Catalog

    params = {
        "source": source,
        "n_people": n_people,
        "seed": seed,
        "multi": multi,
        "permute": permute,
        "fullname": fullname,
        "version": 1,
    }
    stage = f"bios:{source}"
    with Catalog.open(corpus) as catalog:
        if catalog.stage_done(stage, params) and not catalog.unsound_files(source=source, stage=stage):
            row = catalog.exec_one(
                "SELECT stats FROM stage_runs WHERE stage = ? AND status = 'done' ORDER BY id DESC LIMIT 1",
                [stage],
            )
            return {**json.loads(row[0] if row else "{}"), "skipped": True}
        from phicorpus.catalog import params_hash

        other = catalog.exec_one(
            "SELECT count(*) FROM stage_runs WHERE stage = ? AND params_hash <> ?",
            [stage, params_hash(params)],
        )
        mine = catalog.exec_one(
            "SELECT count(*) FROM stage_runs WHERE stage = ? AND params_hash = ?",
            [stage, params_hash(params)],
        )
        if other and other[0] and not (mine and mine[0]) and catalog.shards("docs", source):
            raise ValueError(
                f"{corpus.docs_dir(source)}: already holds a bioS corpus made with other parameters; "
                "use another --corpus or source name"
            )
        run_id = catalog.start_stage(stage, params)
        catalog.ensure_source(source, "offline", "bioS generator (Physics of Language Models 3.1)")
        docs, qa = generate_bios(n_people, seed, multi, permute, fullname, source=source)
        provenance = json.dumps({"generator": "bioS", **params}, sort_keys=True)
        shards = 0
        for shard, start in enumerate(range(0, max(docs.num_rows, 1), rows_per_shard)):
            part = docs.slice(start, rows_per_shard)
            path = corpus.docs_dir(source) / f"part-{shard:05d}.parquet"
            shards += 1
            registered = catalog.shards_at(corpus.relative(path))
            if registered and cheap_file_problem(path, registered[0].bytes) is None:
                continue  # a missing or torn shard is written again (its documents stay as they are)
            with atomic_path(path) as tmp:
                pq.write_table(part, tmp, compression="zstd")
            texts = part.column("text").to_pylist()
            rows = pa.table(
                {
                    "id": part.column("id"),
                    "source": pa.array([source] * part.num_rows, pa.string()),
                    "kind": pa.array(["bios"] * part.num_rows, pa.string()),
                    "file": pa.array([corpus.relative(path)] * part.num_rows, pa.string()),
                    "row": pa.array(range(part.num_rows), pa.int64()),
                    "provenance": pa.array([provenance] * part.num_rows, pa.string()),
                    "chars": pa.array([len(t) for t in texts], pa.int64()),
                    "bytes": pa.array([len(t.encode("utf-8")) for t in texts], pa.int64()),
                    "lines": pa.array([t.count("\n") + 1 for t in texts], pa.int64()),
                    "language": pa.array(["en"] * part.num_rows, pa.string()),
                    "format": pa.array(["bios"] * part.num_rows, pa.string()),
                }
            )
            with catalog.transaction():
                catalog.register_shard(
                    corpus.relative(path),
                    "docs",
                    rows=part.num_rows,
                    source=source,
                    stage=stage,
                )
                catalog.insert_documents(rows, skip_existing=True)
        qa_path = corpus.root / "qa" / f"{source}.parquet"
        if not (catalog.is_registered(corpus.relative(qa_path)) and cheap_file_problem(qa_path) is None):
            with atomic_path(qa_path) as tmp:
                pq.write_table(qa, tmp, compression="zstd")
            with catalog.transaction():
                catalog.register_shard(
                    corpus.relative(qa_path),
                    "qa",
                    rows=qa.num_rows,
                    source=source,
                    stage=stage,
                )
        stats = {"people": n_people, "documents": docs.num_rows, "shards": shards, "qa_pairs": qa.num_rows}
        catalog.finish_stage(run_id, stats)
    return {**stats, "skipped": False}
