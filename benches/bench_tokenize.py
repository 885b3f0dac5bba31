"""Tokenization throughput: phicorpus vs gigatoken, fastokens, tiktoken and Hugging Face
``tokenizers``, same vocabulary, same documents, one run.

Run: ``python benches/bench_tokenize.py`` (trains and caches a 50k byte-level BPE at
``benches/data/tokenizer-50k.json`` on the first run, then measures on a slice of the benchmark
corpus, ``PHICORPUS_BENCH_MB`` MB, 50 by default) with three tokenizers on that vocabulary: the
GPT-2 split, the Llama-3 split, and CodeGen's (GPT-2 plus 38 whitespace-run added tokens, as
phi-1.5 has). Each encoder runs cold (a fresh instance's first call) and warm (best of the later
calls, rounds interleaved across encoders), on 1 thread and on 2 where it has a thread knob.
Single-thread runs are also timed in process CPU time, which a loaded machine disturbs less
than wall time (the encode is the process's only busy thread then).
Prints ``name  ours  peer  ratio`` lines and each encoder's ID parity with ``tokenizers``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Single-threaded peers: `tokenizers` runs encode_batch serially when TOKENIZERS_PARALLELISM is
# false (read on each call); rayon's global pool would otherwise use every core.
os.environ["TOKENIZERS_PARALLELISM"] = "false"
# gigatoken's parallel path uses rayon's global pool (its 1-thread path runs on the caller);
# fastokens has its own worker count. phicorpus pins its pools per call (num_threads).
os.environ.setdefault("RAYON_NUM_THREADS", "2")
os.environ.setdefault("FASTOKENS_BPE_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from common import DATA_DIR, best_time, load_corpus, mbytes, report
from phicorpus.tokenize import Tokenizer, train_tokenizer

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
TOKENIZER_PATH = DATA_DIR / "tokenizer-50k.json"
LLAMA3_STYLE_PATH = DATA_DIR / "tokenizer-50k-llama3-pattern.json"
CODEGEN_STYLE_PATH = DATA_DIR / "tokenizer-50k-codegen.json"
TRAIN_MB = 30.0
BENCH_MB = float(os.environ.get("PHICORPUS_BENCH_MB", "50"))
#: Warm rounds per encoder (the best counts).
ROUNDS = int(os.environ.get("PHICORPUS_BENCH_ROUNDS", "5"))


@dataclass
class Contender:
    """One encoder: ``make`` gives a fresh instance, ``one``/``two`` encode a batch with it on
    1 / 2 threads (``two`` None: no thread knob) and give flat ids and ``len + 1`` offsets."""

    make: Callable[[], Any]
    one: Callable[[Any, list[str]], tuple[np.ndarray, np.ndarray]]
    two: Callable[[Any, list[str]], tuple[np.ndarray, np.ndarray]] | None
    repeat: int = ROUNDS


def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable char -> byte map (the inverse of ``bytes_to_unicode``)."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def pattern_of(data: dict[str, Any]) -> str:
    """The pre-tokenizer regex of a tokenizer.json: a Split's pattern, else GPT-2's."""
    pre = data["pre_tokenizer"]
    for step in pre.get("pretokenizers", [pre]):
        if step["type"] == "Split":
            return str(step["pattern"]["Regex"])
    return GPT2_PATTERN


def tiktoken_encoding(tokenizer_path: str) -> object:
    """A tiktoken ``Encoding`` with the same pattern and BPE ranks as ``tokenizer_path``.

    Ranks are the token ids: the ``tokenizers`` trainer numbers tokens in merge order.
    """
    import tiktoken

    data = json.loads(Path(tokenizer_path).read_text(encoding="utf-8"))
    specials = {t["content"]: t["id"] for t in data["added_tokens"] if t["special"]}
    to_byte = _byte_decoder()
    ranks = {
        bytes(to_byte[c] for c in token): id
        for token, id in data["model"]["vocab"].items()
        if token not in specials
    }
    return tiktoken.Encoding(
        name="phicorpus-bench", pat_str=pattern_of(data), mergeable_ranks=ranks, special_tokens=specials
    )


def _flat(ids: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(ids, dtype=np.uint32), np.asarray(offsets, dtype=np.int64)


def contenders(tokenizer_path: str) -> dict[str, Contender]:
    """Each encoder of ``tokenizer_path``: a factory of a fresh instance (cold caches) and its
    batch encode on 1 and 2 threads, giving ``(ids, offsets)``."""
    out: dict[str, Contender] = {
        "phicorpus": Contender(
            lambda: Tokenizer.from_file(tokenizer_path),
            lambda t, docs: _flat(*t.encode_batch(docs, num_threads=1)),
            lambda t, docs: _flat(*t.encode_batch(docs, num_threads=2)),
        )
    }
    try:
        import awkward as ak
        import gigatoken

        def giga(parallel: bool) -> Callable[[Any, list[str]], tuple[np.ndarray, np.ndarray]]:
            def encode(t: Any, docs: list[str]) -> tuple[np.ndarray, np.ndarray]:
                arr = t.encode_batch(docs, parallel=parallel)
                counts = np.asarray(ak.num(arr), dtype=np.int64)
                return np.asarray(ak.flatten(arr), dtype=np.uint32), np.concatenate([[0], np.cumsum(counts)])

            return encode

        out["gigatoken"] = Contender(lambda: gigatoken.Tokenizer(tokenizer_path), giga(False), giga(True))
    except Exception as e:  # a peer that does not load is reported
        print(f"gigatoken unavailable for {tokenizer_path}: {type(e).__name__}: {e}")
    try:
        import fastokens

        def fast(t: Any, docs: list[str]) -> tuple[np.ndarray, np.ndarray]:
            ids, offsets = t.encode_batch_flat(docs, add_special_tokens=True)
            return np.frombuffer(ids, np.uint32), np.frombuffer(offsets, np.uint64).astype(np.int64)

        out["fastokens"] = Contender(lambda: fastokens.Tokenizer.from_file(tokenizer_path), fast, None)
    except Exception as e:
        print(f"fastokens unavailable for {tokenizer_path}: {type(e).__name__}: {e}")
    try:
        enc = tiktoken_encoding(tokenizer_path)

        def tk(t: Any, docs: list[str]) -> tuple[np.ndarray, np.ndarray]:
            lists = t.encode_ordinary_batch(docs, num_threads=1)
            return _lists(lists)

        out["tiktoken"] = Contender(lambda: enc, tk, None, repeat=1)
    except Exception as e:
        print(f"tiktoken unavailable for {tokenizer_path}: {type(e).__name__}: {e}")
    return out


def _lists(lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    counts = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
    flat = np.fromiter((i for x in lists for i in x), dtype=np.uint32, count=int(counts.sum()))
    return flat, np.concatenate([[0], np.cumsum(counts)])


def parity(got: tuple[np.ndarray, np.ndarray], want: list[list[int]]) -> int:
    """Number of documents whose ids equal ``want``'s."""
    ids, offsets = got
    return sum(1 for i, w in enumerate(want) if np.array_equal(ids[offsets[i] : offsets[i + 1]], w))


def run(docs: list[str], tokenizer_path: str, label: str = "") -> list[str]:
    """Measure every encoder on ``docs`` in one run: cold (fresh instance, first call) and warm
    (best of the following calls, rounds interleaved so load changes hit all alike), 1 and 2
    threads; ids checked against ``tokenizers`` per document. Returns the report lines."""
    from tokenizers import Tokenizer as HfTokenizer

    label = f"{label} " if label else ""
    lines: list[str] = []
    size = mbytes(docs)
    encoders = contenders(tokenizer_path)
    print(f"data: {len(docs)} documents, {size:.1f} MB; tokenizer {tokenizer_path}")

    cold: dict[str, float] = {}
    warm1: dict[str, float] = {}
    warm2: dict[str, float] = {}
    outputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    instances: dict[str, Any] = {}
    for name, c in encoders.items():
        t = c.make()
        start = time.perf_counter()
        outputs[name] = c.one(t, docs)
        cold[name] = time.perf_counter() - start
        instances[name] = t
    cpu1: dict[str, float] = {}
    # All single-thread rounds before any 2-thread one: no idle pool thread of a parallel run
    # (they spin a moment before sleeping) is charged to a single-thread run's CPU time.
    for two_threads in (False, True):
        for round_ in range(ROUNDS):
            for name, c in encoders.items():
                fn = c.two if two_threads else c.one
                if round_ >= c.repeat or fn is None:
                    continue
                start, cpu = time.perf_counter(), time.process_time()
                fn(instances[name], docs)
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu
                best = warm2 if two_threads else warm1
                best[name] = min(best.get(name, float("inf")), wall)
                if not two_threads:
                    cpu1[name] = min(cpu1.get(name, float("inf")), cpu)

    hf = HfTokenizer.from_file(tokenizer_path)
    hf_out: list[list[int]] = []

    def hf_batch() -> None:
        hf_out[:] = [e.ids for e in hf.encode_batch(docs)]

    t_hf = best_time(hf_batch, repeat=1)  # slow peer: one run
    n_tokens = len(outputs["phicorpus"][0])
    lines.append(f"{label}tokens: {n_tokens} ({size * 1e6 / max(n_tokens, 1):.2f} bytes/token)")
    for name in encoders:
        same = parity(outputs[name], hf_out)
        lines.append(f"{label}parity {name} with tokenizers: {same}/{len(docs)} documents identical")
    for line in lines:
        print(line)
    ours = "phicorpus"

    def line(name: str, mine: float, peer: float, peer_name: str) -> None:
        lines.append(report(f"{label}{name}", size / mine, size / peer, peer_name))

    for name in encoders:
        if name != ours:
            line(f"1 thread warm vs {name}", warm1[ours], warm1[name], f"{name} 1 thread")
            line(f"1 thread warm CPU time vs {name}", cpu1[ours], cpu1[name], f"{name} 1 thread CPU")
            line(f"1 thread cold vs {name}", cold[ours], cold[name], f"{name} 1 thread cold")
            if name in warm2:
                line(f"2 threads vs {name}", warm2[ours], warm2[name], f"{name} 2 threads")
    line("1 thread vs tokenizers", warm1[ours], t_hf, "tokenizers 1 thread")
    line("2 threads vs 1 thread", warm2[ours], warm1[ours], "ours 1 thread")
    return lines


def main() -> None:
    docs = load_corpus()
    if not TOKENIZER_PATH.exists():
        sample, total = [], 0
        for d in docs[::3]:
            sample.append(d)
            total += len(d.encode())
            if total > TRAIN_MB * 1e6:
                break
        start = time.perf_counter()
        train_tokenizer(sample, 50_000, TOKENIZER_PATH)
        print(f"trained {TOKENIZER_PATH} on {total / 1e6:.1f} MB in {time.perf_counter() - start:.0f} s")
    bench, total = [], 0
    for d in docs:
        total += len(d.encode())
        if total > BENCH_MB * 1e6:
            break
        bench.append(d)
    run(bench, str(TOKENIZER_PATH), "gpt2")
    # The same vocabulary behind the Llama-3 / cl100k split (exercises the other scanner).
    data = json.loads(TOKENIZER_PATH.read_text(encoding="utf-8"))
    data["pre_tokenizer"] = {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ],
    }
    LLAMA3_STYLE_PATH.write_text(json.dumps(data), encoding="utf-8")
    run(bench, str(LLAMA3_STYLE_PATH), "llama3")
    run(bench, str(codegen_style(TOKENIZER_PATH, CODEGEN_STYLE_PATH)), "codegen")


def codegen_style(gpt2: Path, out: Path) -> Path:
    """CodeGen's tokenizer shape (phi-1.5): the GPT-2 one plus added tokens for runs of 2-31
    spaces and 2-9 tabs (normalized, not special)."""
    from tokenizers import AddedToken
    from tokenizers import Tokenizer as HfTokenizer

    tok = HfTokenizer.from_file(str(gpt2))
    runs = [" " * n for n in range(31, 1, -1)] + ["\t" * n for n in range(9, 1, -1)]
    tok.add_tokens([AddedToken(r, normalized=True, special=False) for r in runs])
    tok.save(str(out))
    return out


if __name__ == "__main__":
    main()
