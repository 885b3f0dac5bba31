"""Typed fronts over the Rust dedup core: normalization, shingles, MinHash, LSH, exact hashes.

Every function here normalizes text the same way (:func:`normalize_text`), so a MinHash
signature, a shingle list and an exact hash of one document all see the same words.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from phicorpus import _core

__all__ = [
    "EMPTY_SLOT",
    "exact_hashes",
    "lsh_clusters",
    "lsh_dedup",
    "lsh_params",
    "lsh_recall_params",
    "minhash_signatures",
    "normalize_text",
    "shingles",
]

#: The value of every slot of the signature of a document without words.
EMPTY_SLOT = 0xFFFFFFFF


def _positive_int(name: str, value: int) -> int:
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if number < 1:
        raise ValueError(f"{name} must be at least 1, got {number}")
    return number


def _threads(num_threads: int | None) -> int | None:
    return None if num_threads is None else _positive_int("num_threads", num_threads)


def normalize_text(text: str) -> str:
    """The normalized form of ``text`` that dedup hashes.

    The scheme, applied character by character (no Unicode normalization form):

    1. lowercase each character with Unicode's default case mapping (``İ`` → ``i̇``; no
       context-sensitive final sigma);
    2. keep letters (``L*``), numbers (``N*``, digits included) and combining marks (``M*``);
    3. delete apostrophes (``'`` and U+2019 ``\u2019``), so ``don't`` and ``dont`` are the same word;
    4. turn every other character (punctuation, symbols, whitespace, controls) into a word
       separator: runs of separators become one space and the ends are trimmed.

    Words are then the space-separated tokens of the result.

    Args:
        text: Any text.

    Returns:
        The normalized text.

    Example:
        >>> normalize_text("  Don't PANIC -- it's 42!  ")
        'dont panic its 42'
    """
    return _core.normalize_text(text)


def shingles(text: str, ngram: int = 5) -> list[str]:
    """The word ``ngram``-shingles of ``text`` as strings (for tests and debugging).

    A text with at least one but fewer than ``ngram`` words is a single shingle of all its
    words; a text without words has none. Duplicates are kept, in document order; the set of
    these strings is exactly what :func:`minhash_signatures` hashes.

    Args:
        text: Any text; it is normalized first (:func:`normalize_text`).
        ngram: Words per shingle, at least 1.

    Returns:
        The shingles, each the words joined by single spaces.

    Example:
        >>> shingles("The cat sat, on the mat.", ngram=4)
        ['the cat sat on', 'cat sat on the', 'sat on the mat']
        >>> shingles("Hi there", ngram=5)
        ['hi there']
    """
    return _core.shingles(text, _positive_int("ngram", ngram))


def minhash_signatures(
    texts: Sequence[str],
    num_perm: int = 128,
    ngram: int = 5,
    seed: int = 1,
    num_threads: int | None = None,
) -> npt.NDArray[np.uint32]:
    """MinHash signatures of the word ``ngram``-shingle sets of ``texts``.

    Each word is hashed once to 64 bits (keyed by ``seed``: an xxh3-style mix of its bytes, xxh3
    itself for words over 16 bytes), and each shingle (see :func:`shingles`) hashes to
    ``fmix64(k*L ^ w_0 ^ rotl(w_1, 13) ^ ... ^ rotl(w_(k-1), 13*(k-1) % 64))`` of the hashes of its
    ``k`` words, in order (murmur3's 64-bit finalizer); the exact scheme is documented in the
    Rust module ``phicorpus::dedup::minhash``. Permutation ``i`` is
    ``((a_i * h + b_i) mod 2**52) >> 20`` with odd ``a_i < 2**52`` and ``b_i < 2**52`` the low
    52 bits of a splitmix64 stream seeded with ``seed``, and slot ``i`` is its minimum over the
    shingles. The fraction of equal slots of two signatures estimates the
    Jaccard similarity of the two shingle sets, with standard error
    ``sqrt(J * (1 - J) / num_perm)``.

    Slots are 32-bit: half the memory of 64-bit slots (1M documents x 128 permutations is
    512 MB), while two different shingle sets collide on a slot by chance with probability
    about 2**-32, far below the estimator's own error of ~1/sqrt(num_perm).

    A text without any word gets a signature of all ``0xFFFFFFFF`` (:data:`EMPTY_SLOT`);
    :func:`lsh_clusters` keeps such documents apart.

    Args:
        texts: The documents (a list or any sequence of ``str``).
        num_perm: Permutations (slots per signature), at least 1.
        ngram: Words per shingle, at least 1.
        seed: Seed of the shingle hash and of the permutations, a non-negative int below 2**64.
        num_threads: Worker threads; ``None`` uses all cores.

    Returns:
        A ``(len(texts), num_perm)`` C-contiguous uint32 array.

    Raises:
        TypeError: An item of ``texts`` is not a ``str`` (the message names its index).
        ValueError: ``num_perm``, ``ngram`` or ``num_threads`` is below 1, or ``seed`` is out of range.

    Example:
        >>> sig = minhash_signatures(["a b c d e f", "a b c d e g"], num_perm=64, ngram=2)
        >>> sig.shape, sig.dtype
        ((2, 64), dtype('uint32'))
        >>> 0.4 < float((sig[0] == sig[1]).mean()) < 0.95  # J = 4/6
        True
    """
    num_perm = _positive_int("num_perm", num_perm)
    ngram = _positive_int("ngram", ngram)
    seed = operator.index(seed)
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return _core.minhash_signatures(texts, num_perm, ngram, seed, _threads(num_threads))


def lsh_params(
    threshold: float,
    num_perm: int,
    false_positive_weight: float = 0.5,
    false_negative_weight: float = 0.5,
) -> tuple[int, int]:
    """The LSH ``(bands, rows)`` for a Jaccard ``threshold``, as datasketch's ``MinHashLSH`` picks.

    Over every ``bands * rows <= num_perm``, minimizes
    ``false_positive_weight * FP + false_negative_weight * FN`` where FP is the integral of the
    collision probability ``1 - (1 - s**rows)**bands`` over ``[0, threshold]`` and FN the
    integral of its complement over ``[threshold, 1]``.

    Args:
        threshold: Jaccard similarity in ``[0, 1]``.
        num_perm: Permutations of the signatures, at least 1.
        false_positive_weight: Weight of the false-positive integral.
        false_negative_weight: Weight of the false-negative integral.

    Returns:
        ``(bands, rows)``.

    Example:
        >>> lsh_params(0.7, 128), lsh_params(0.8, 128)
        ((14, 9), (9, 13))
    """
    return _core.lsh_params(
        float(threshold),
        _positive_int("num_perm", num_perm),
        float(false_positive_weight),
        float(false_negative_weight),
    )


def _check_signatures(signatures: npt.NDArray[np.uint32], bands: int, rows: int) -> tuple[int, int]:
    if not isinstance(signatures, np.ndarray):
        raise TypeError(f"signatures must be a numpy.ndarray, got {type(signatures).__name__}")
    if signatures.dtype != np.uint32 or signatures.ndim != 2:
        raise TypeError(f"signatures must be a 2-D uint32 array, got {signatures.ndim}-D {signatures.dtype}")
    bands = _positive_int("bands", bands)
    rows = _positive_int("rows", rows)
    num_perm = signatures.shape[1]
    if bands * rows > num_perm:
        raise ValueError(f"bands * rows = {bands} * {rows} = {bands * rows} exceeds num_perm = {num_perm}")
    return bands, rows


def lsh_clusters(
    signatures: npt.NDArray[np.uint32],
    bands: int,
    rows: int,
    num_threads: int | None = None,
) -> npt.NDArray[np.int64]:
    """Near-duplicate clusters by LSH banding and union-find.

    Band ``j`` is slots ``j*rows : (j+1)*rows``; two documents whose band ``j`` is equal (by a
    64-bit xxh3 of its bytes) are joined, and clusters are the connected components. Documents
    whose signature is all :data:`EMPTY_SLOT` are singletons.

    Args:
        signatures: A C-contiguous ``(n, num_perm)`` uint32 array (read without copying), as
            :func:`minhash_signatures` returns.
        bands: Bands, at least 1.
        rows: Slots per band, at least 1, with ``bands * rows <= num_perm``.
        num_threads: Worker threads; ``None`` uses all cores.

    Returns:
        An int64 array of length ``n``: each document's cluster id, the smallest document index
        of its cluster (so ``labels[i] == i`` marks the document to keep).

    Raises:
        TypeError: ``signatures`` is not a 2-D uint32 NumPy array.
        ValueError: It is not C-contiguous, or ``bands * rows > num_perm``.

    Example:
        >>> sig = minhash_signatures(["one two three", "One, two three!", "four five"], num_perm=16)
        >>> lsh_clusters(sig, bands=4, rows=4).tolist()
        [0, 0, 2]
    """
    bands, rows = _check_signatures(signatures, bands, rows)
    return _core.lsh_clusters(signatures, bands, rows, _threads(num_threads))


def lsh_recall_params(threshold: float, num_perm: int, min_recall: float = 0.95) -> tuple[int, int]:
    """The LSH ``(bands, rows)`` for candidates that :func:`lsh_dedup` verifies.

    Verification removes the false candidates, so the banding is chosen for recall: the most rows
    per band (fewest chance candidates, least work) with ``bands = num_perm // rows`` such that
    two documents of Jaccard similarity exactly ``threshold`` share a band with probability
    ``1 - (1 - threshold**rows)**bands >= min_recall``; ``(num_perm, 1)`` if none does.

    Args:
        threshold: Jaccard similarity in ``[0, 1]``.
        num_perm: Permutations of the signatures, at least 1.
        min_recall: Least probability that a pair at ``threshold`` becomes a candidate.

    Returns:
        ``(bands, rows)``.

    Example:
        >>> lsh_recall_params(0.8, 128)  # P(candidate | J=0.8) = 0.986; lsh_params' (9, 13): 0.40
        (18, 7)
    """
    return _core.lsh_recall_params(float(threshold), _positive_int("num_perm", num_perm), float(min_recall))


def lsh_dedup(
    signatures: npt.NDArray[np.uint32],
    priority: npt.ArrayLike,
    bands: int,
    rows: int,
    threshold: float,
    max_reps: int = 256,
    num_threads: int | None = None,
) -> npt.NDArray[np.int64]:
    """Verified near-duplicate clustering: each document's representative.

    1. Candidates: documents sharing an LSH band are joined into connected components, as
       :func:`lsh_clusters` does.
    2. Verification: in each component, documents are taken in ``priority`` order (smallest
       first, ties by index); each becomes a duplicate of the earliest representative whose
       signature agrees with its own on at least a ``threshold`` fraction of all slots (the
       MinHash estimate of Jaccard similarity), else a representative itself. So every
       duplicate is within ``threshold`` of its representative, never only through a chain of
       similar documents, and a representative is the best document of its duplicates.

    Documents with a negative priority take no part (for duplicates the caller has already
    resolved, such as exact copies), and documents whose signature is all :data:`EMPTY_SLOT`
    are singletons: both are their own representatives.

    A document is compared with at most ``max_reps`` representatives of its component, the most
    recent ones, so a giant component (templates, boilerplate) costs at most
    ``n * max_reps * num_perm`` slot comparisons and no pair list. In a component with more
    representatives than that, a document whose only match is an older representative is kept:
    a missed duplicate, never a wrong one. The work runs in parallel over components with the
    GIL released, and the result does not depend on ``num_threads``.

    Args:
        signatures: A C-contiguous ``(n, num_perm)`` uint32 array (read without copying), as
            :func:`minhash_signatures` returns.
        priority: ``n`` integers, smallest first (e.g. the rank of a quality score).
        bands: Bands, at least 1 (see :func:`lsh_recall_params`).
        rows: Slots per band, at least 1, with ``bands * rows <= num_perm``.
        threshold: Jaccard similarity in ``[0, 1]`` at or above which a document is a duplicate.
        max_reps: Representatives of its component a document is compared with, at least 1.
        num_threads: Worker threads; ``None`` uses all cores.

    Returns:
        An int64 array of length ``n``: each document's representative (``reps[i] == i`` for the
        documents to keep).

    Raises:
        TypeError: ``signatures`` is not a 2-D uint32 NumPy array.
        ValueError: It is not C-contiguous, ``bands * rows > num_perm``, ``priority`` has the wrong
            length, or ``threshold`` is outside ``[0, 1]``.

    Example:
        >>> a = np.arange(10, dtype=np.uint32)
        >>> b = a.copy(); b[:2] = [100, 101]  # 8 of 10 slots equal to a's: 0.8
        >>> c = b.copy(); c[2:4] = [102, 103]  # 0.8 to b, but 0.6 to a
        >>> sig = np.stack([a, b, c, a + 50])
        >>> lsh_clusters(sig, bands=2, rows=5).tolist()  # slots 5-9 shared: a chain
        [0, 0, 0, 3]
        >>> lsh_dedup(sig, [0, 1, 2, 3], bands=2, rows=5, threshold=0.8).tolist()
        [0, 0, 2, 3]
        >>> lsh_dedup(sig, [2, 1, 0, 3], bands=2, rows=5, threshold=0.8).tolist()  # c first
        [0, 2, 2, 3]
    """
    bands, rows = _check_signatures(signatures, bands, rows)
    ranks = np.ascontiguousarray(priority, dtype=np.int64)
    if ranks.shape != (signatures.shape[0],):
        raise ValueError(f"priority must have shape ({signatures.shape[0]},), got {ranks.shape}")
    return _core.lsh_dedup(
        signatures,
        ranks,
        bands,
        rows,
        float(threshold),
        _positive_int("max_reps", max_reps),
        _threads(num_threads),
    )


def exact_hashes(texts: Sequence[str], num_threads: int | None = None) -> npt.NDArray[np.uint64]:
    """xxh3-64 hashes of the normalized texts, for exact-duplicate removal.

    Texts that differ only in case, punctuation and whitespace (see :func:`normalize_text`)
    get the same hash.

    Args:
        texts: The documents (a list or any sequence of ``str``).
        num_threads: Worker threads; ``None`` uses all cores.

    Returns:
        A uint64 array of length ``len(texts)``.

    Raises:
        TypeError: An item of ``texts`` is not a ``str`` (the message names its index).

    Example:
        >>> h = exact_hashes(["Hello, World!", "hello world", "hello there"])
        >>> bool(h[0] == h[1]), bool(h[1] == h[2])
        (True, False)
    """
    return _core.exact_hashes(texts, _threads(num_threads))
