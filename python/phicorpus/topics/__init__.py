"""Topic seeds: load, validate and sample the subject > course > unit > leaf hierarchy.

The seeds are Markdown files in ``topics/`` (shipped inside the package as
``phicorpus/topics/data``), one per subject::

    # Physics
    ## Classical mechanics
    ### Kinematics in one dimension
    - Displacement versus distance travelled on a straight track

Every leaf seeds one generated textbook section. ``load_topics`` parses the files (a malformed line
raises :class:`TopicFileError` naming the file and line); ``check_topics`` applies the corpus-wide
rules (size, subject balance, no near-duplicate leaves, checked with the Rust MinHash).

Example:
    >>> topics = load_topics()
    >>> topics[0].path_str  # doctest: +SKIP
    'Algebra > Expressions > ... > Combining like terms'
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

__all__ = [
    "Topic",
    "TopicFileError",
    "check_topics",
    "default_topics_dir",
    "load_topics",
    "near_duplicate_pairs",
    "parse_topic_file",
]

SEPARATOR = " \u203a "
_LEAF_WORDS = (3, 16)
_UNIT_LEAVES = (4, 15)
_COURSE_UNITS = (3, 20)
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class TopicFileError(ValueError):
    """A topic file breaks the format; the message starts with ``file:line:``."""


@dataclass(frozen=True, slots=True)
class Topic:
    """One leaf topic and where it sits in the hierarchy."""

    subject: str
    course: str
    unit: str
    leaf: str
    slug: str
    """The subject's file name without ``.md`` (``physics``)."""
    file: str
    line: int

    @property
    def path(self) -> tuple[str, str, str, str]:
        return (self.subject, self.course, self.unit, self.leaf)

    @property
    def path_str(self) -> str:
        return SEPARATOR.join(self.path)

    @property
    def id(self) -> str:
        """A stable id: the subject slug and a hash of the full path (``physics-3f9a1c0d2b7e``)."""
        digest = hashlib.sha1(self.path_str.encode("utf-8")).hexdigest()[:12]
        return f"{self.slug}-{digest}"


def default_topics_dir() -> Path:
    """The seeds shipped with the package (``topics/`` in the repository)."""
    return Path(str(files("phicorpus.topics").joinpath("data")))


def parse_topic_file(path: str | Path) -> list[Topic]:
    """Parse one subject file; raise :class:`TopicFileError` on the first malformed line."""
    path = Path(path)
    slug = path.stem
    if not _SLUG.match(slug):
        raise TopicFileError(f"{path}:1: file name must be a lowercase-hyphen slug, got {path.name!r}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TopicFileError(f"{path}:1: not valid UTF-8 ({exc.reason})") from exc
    subject = course = unit = None
    topics: list[Topic] = []
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip()
        if not line.strip():
            continue

        def fail(msg: str, _lineno: int = lineno) -> TopicFileError:
            return TopicFileError(f"{path}:{_lineno}: {msg}")

        if raw != raw.lstrip():
            raise fail("unexpected indentation (leaves are '- text' at the start of the line)")
        if line.startswith("### "):
            if course is None:
                raise fail("unit heading before any '## course' heading")
            unit = _heading(line, 4, fail)
        elif line.startswith("## "):
            if subject is None:
                raise fail("course heading before the '# subject' heading")
            course, unit = _heading(line, 3, fail), None
        elif line.startswith("# "):
            if subject is not None:
                raise fail("a second '# subject' heading (one subject per file)")
            subject = _heading(line, 2, fail)
        elif line.startswith("- "):
            if unit is None or course is None or subject is None:
                raise fail("leaf topic outside a '### unit'")
            leaf = line[2:].strip()
            n_words = len(leaf.split())
            if not _LEAF_WORDS[0] <= n_words <= _LEAF_WORDS[1]:
                raise fail(f"leaf has {n_words} words, expected {_LEAF_WORDS[0]}-{_LEAF_WORDS[1]}: {leaf!r}")
            if leaf.endswith("."):
                raise fail(f"leaf ends with a period: {leaf!r}")
            topics.append(Topic(subject, course, unit, leaf, slug, str(path), lineno))
        else:
            raise fail(f"expected '# subject', '## course', '### unit' or '- leaf', got {line[:60]!r}")
    if subject is None:
        raise TopicFileError(f"{path}:1: empty file (expected a '# subject' heading)")
    return topics


def _heading(line: str, skip: int, fail: object) -> str:
    title = line[skip:].strip()
    if not title or title.startswith("#"):
        assert callable(fail)
        raise fail(f"malformed heading {line!r}")
    return title


def topic_files(directory: str | Path | None = None) -> list[Path]:
    """The subject files of a directory, sorted by name.

    Only ``<slug>.md`` names are subject files (lowercase, hyphens), so ``README.md`` or a
    ``FORMAT.md`` beside the seeds is not read as one.
    """
    directory = Path(directory) if directory is not None else default_topics_dir()
    return sorted(p for p in directory.glob("*.md") if _SLUG.match(p.stem))


def load_topics(directory: str | Path | None = None) -> list[Topic]:
    """All leaf topics of a directory (default: the shipped seeds), in file then line order.

    Raises:
        TopicFileError: a file is malformed, a leaf appears twice, or there are no files.
    """
    paths = topic_files(directory)
    if not paths:
        raise TopicFileError(f"{directory or default_topics_dir()}:0: no topic files (*.md)")
    topics: list[Topic] = []
    seen: dict[str, Topic] = {}
    for path in paths:
        for topic in parse_topic_file(path):
            key = topic.leaf.casefold()
            if key in seen:
                first = seen[key]
                raise TopicFileError(
                    f"{topic.file}:{topic.line}: duplicate leaf {topic.leaf!r} "
                    f"(first at {first.file}:{first.line})"
                )
            seen[key] = topic
            topics.append(topic)
    return topics


def near_duplicate_pairs(
    leaves: Sequence[str], threshold: float = 0.8, num_perm: int = 128
) -> list[tuple[int, int, float]]:
    """Pairs of leaves whose word sets have Jaccard similarity >= ``threshold``.

    Candidates come from the Rust MinHash-LSH over word unigrams; each candidate pair is then
    confirmed with the exact Jaccard of the normalized word sets.
    """
    from phicorpus.dedup import lsh_clusters, lsh_params, minhash_signatures, normalize_text

    if len(leaves) < 2:
        return []
    signatures = minhash_signatures(list(leaves), num_perm=num_perm, ngram=1)
    bands, rows = lsh_params(threshold, num_perm, false_positive_weight=0.2, false_negative_weight=0.8)
    labels = lsh_clusters(signatures, bands, rows)
    words = [set(normalize_text(leaf).split()) for leaf in leaves]
    pairs: list[tuple[int, int, float]] = []
    for label in np.unique(labels[labels != np.arange(len(labels))]):
        members = np.flatnonzero(labels == label).tolist()
        for a_pos, a in enumerate(members):
            for b in members[a_pos + 1 :]:
                union = words[a] | words[b]
                jaccard = len(words[a] & words[b]) / len(union) if union else 1.0
                if jaccard >= threshold:
                    pairs.append((a, b, jaccard))
    return pairs


def check_topics(
    topics: Sequence[Topic],
    *,
    min_leaves: int = 20_000,
    min_subjects: int = 40,
    max_subject_share: float = 0.08,
    near_dup_threshold: float = 0.8,
) -> list[str]:
    """Corpus-wide rules; returns one ``file:line: problem`` string per violation (empty = valid)."""
    problems: list[str] = []
    subjects = Counter(t.slug for t in topics)
    if len(topics) < min_leaves:
        problems.append(f"<all>:0: {len(topics)} leaf topics, expected at least {min_leaves}")
    if len(subjects) < min_subjects:
        problems.append(f"<all>:0: {len(subjects)} subjects, expected at least {min_subjects}")
    first_line = {t.slug: t.file for t in reversed(topics)}
    for slug, count in subjects.items():
        if topics and count > max_subject_share * max(len(topics), min_leaves):
            problems.append(
                f"{first_line[slug]}:1: subject has {count} leaves, over {max_subject_share:.0%} of the total"
            )
    problems.extend(_shape_problems(topics))
    for a, b, jaccard in near_duplicate_pairs([t.leaf for t in topics], near_dup_threshold):
        ta, tb = topics[a], topics[b]
        problems.append(
            f"{tb.file}:{tb.line}: near-duplicate of {ta.file}:{ta.line} (Jaccard {jaccard:.2f}): "
            f"{tb.leaf!r} ~ {ta.leaf!r}"
        )
    return problems


def _shape_problems(topics: Iterable[Topic]) -> list[str]:
    units: dict[tuple[str, str, str], list[Topic]] = {}
    for t in topics:
        units.setdefault((t.slug, t.course, t.unit), []).append(t)
    courses: dict[tuple[str, str], list[Topic]] = {}
    problems = []
    for (slug, course, unit), leaves in units.items():
        courses.setdefault((slug, course), []).append(leaves[0])
        if not _UNIT_LEAVES[0] <= len(leaves) <= _UNIT_LEAVES[1]:
            problems.append(
                f"{leaves[0].file}:{leaves[0].line}: unit {unit!r} has {len(leaves)} leaves, "
                f"expected {_UNIT_LEAVES[0]}-{_UNIT_LEAVES[1]}"
            )
    for (_slug, course), firsts in courses.items():
        if not _COURSE_UNITS[0] <= len(firsts) <= _COURSE_UNITS[1]:
            problems.append(
                f"{firsts[0].file}:{firsts[0].line}: course {course!r} has {len(firsts)} units, "
                f"expected {_COURSE_UNITS[0]}-{_COURSE_UNITS[1]}"
            )
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m phicorpus.topics [DIR]``: validate a topics directory, print problems."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    directory = Path(args[0]) if args else default_topics_dir()
    topics: list[Topic] = []
    problems: list[str] = []
    for path in topic_files(directory):
        try:
            topics.extend(parse_topic_file(path))
        except TopicFileError as exc:
            problems.append(str(exc))
    seen: dict[str, Topic] = {}
    for t in topics:
        first = seen.setdefault(t.leaf.casefold(), t)
        if first is not t:
            where = f"(first at {first.file}:{first.line})"
            problems.append(f"{t.file}:{t.line}: duplicate leaf {t.leaf!r} {where}")
    unique = [t for t in topics if seen[t.leaf.casefold()] is t]
    problems.extend(check_topics(unique))
    for slug, count in sorted(Counter(t.slug for t in topics).items()):
        print(f"{count:6d}  {slug}")
    print(f"{len(topics):6d}  leaves in {len({t.slug for t in topics})} subjects")
    for problem in problems:
        print(problem)
    return 1 if problems else 0
