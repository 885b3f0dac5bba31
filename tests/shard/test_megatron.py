"""Megatron-LM's own readers over a phicorpus build (megatron-core from PyPI, real CPU torch):
its IndexedDataset reads every shard exactly, its IndexedDatasetBuilder rewrites them byte for
byte, and BlendedMegatronDatasetBuilder builds GPTDatasets over the build's per-split paths with
the tokenizer settings the manifest gives (eod id, vocab size)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

# megatron-core's builder passes a tensor to numpy.array(copy=False): a NumPy 2 deprecation, theirs.
pytestmark = [pytest.mark.torch, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
torch = pytest.importorskip("torch")
indexed = pytest.importorskip("megatron.core.datasets.indexed_dataset")

from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder  # noqa: E402
from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig  # noqa: E402
from tests.mix.conftest import make_corpus, read_megatron  # noqa: E402

from phicorpus.build import build_shards  # noqa: E402
from phicorpus.config import BuildConfig  # noqa: E402
from phicorpus.shard import IndexedDataset  # noqa: E402

CONFIG = BuildConfig(
    mix="synthetic:0.8,code:0.2",
    vocab_size=600,
    tokenizer_sample_bytes=200_000,
    shard_tokens=8_000,
    valid_fraction=0.05,
)


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    corpus = make_corpus(tmp_path_factory.mktemp("megatron") / "corpus", n_bios=300, n_code=30)
    manifest = build_shards(corpus, CONFIG)
    return corpus.build_dir("main"), manifest


def prefixes(build_dir: Path, manifest: dict[str, Any], split: str) -> list[str]:
    return [str(build_dir / e["bin"].removesuffix(".bin")) for e in manifest["splits"][split]["shards"]]


def megatron_blend(build_dir: Path, manifest: dict[str, Any], flag: str) -> tuple[list[str], list[float]]:
    """``--train-data-path W1 P1 W2 P2 ...`` of the manifest as (paths, weights), paths resolved
    from the build directory (the README says to run from it)."""
    args = manifest["megatron"]["args"]
    at = args.index(flag) + 1
    end = next((i for i in range(at, len(args)) if args[i].startswith("--")), len(args))
    weights, paths = args[at:end:2], args[at + 1 : end : 2]
    return [str(build_dir / p) for p in paths], [float(w) for w in weights]


def test_indexed_dataset_reads_and_builder_rewrites_exactly(
    build: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    build_dir, manifest = build
    dtype = np.dtype(manifest["dtype"]).type
    for split in ("train", "valid"):
        for prefix in prefixes(build_dir, manifest, split):
            theirs = indexed.IndexedDataset(prefix)
            ours = read_megatron(Path(prefix))  # the documented layout, parsed independently
            assert len(theirs) == len(ours) == len(IndexedDataset(prefix))
            assert theirs.index.dtype == dtype
            for k, seq in enumerate(ours):
                assert np.array_equal(theirs[k].astype(np.int64), seq)
            assert theirs.document_indices.tolist() == list(range(len(ours) + 1))
            # Megatron's writer, fed the same documents, writes the same bytes.
            out = tmp_path / Path(prefix).name
            builder = indexed.IndexedDatasetBuilder(str(out) + ".bin", dtype=dtype)
            for seq in ours:
                builder.add_document(torch.from_numpy(seq), [seq.size])
            builder.finalize(str(out) + ".idx")
            for suffix in (".bin", ".idx"):
                assert Path(str(out) + suffix).read_bytes() == Path(prefix + suffix).read_bytes(), suffix


def test_gpt_dataset_over_the_build(build: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    build_dir, manifest = build
    seq_len = 64
    # What Megatron's tokenizer must say: the manifest's eod id and vocab size (its NullTokenizer
    # would put eod at vocab_size; phicorpus's is 0).
    tokenizer = SimpleNamespace(
        eod=manifest["eos_id"],
        pad=-1,
        vocab_size=manifest["tokenizer"]["vocab_size"],
        unique_identifiers={"class": "phicorpus-test", "eod": manifest["eos_id"]},
    )
    config = GPTDatasetConfig(
        random_seed=1234,
        sequence_length=seq_len,
        # The manifest's Megatron-LM arguments, as pretrain_gpt.py would turn them into a blend.
        blend_per_split=[
            megatron_blend(build_dir, manifest, "--train-data-path"),
            megatron_blend(build_dir, manifest, "--valid-data-path"),
            None,
        ],
        tokenizer=tokenizer,
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
        path_to_cache=str(tmp_path / "megatron-cache"),
    )
    train_tokens = manifest["splits"]["train"]["tokens"]
    n_train = (train_tokens - 1) // seq_len
    # As in a Megatron run: a process group (one gloo rank here), rank 0 builds the index caches.
    dist = torch.distributed
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        builder = BlendedMegatronDatasetBuilder(GPTDataset, [n_train, 8, None], lambda: True, config)
        train, valid, test = builder.build()
    finally:
        dist.destroy_process_group()
    assert test is None and len(train) >= n_train and len(valid) >= 8
    eos = manifest["eos_id"]
    documents = [s for p in prefixes(build_dir, manifest, "train") for s in read_megatron(Path(p))]
    whole = {d.tobytes() for d in documents}
    stream = b"".join(d.tobytes() for d in documents)
    eod_seen = False
    for i in range(0, len(train), max(1, len(train) // 50)):
        sample = train[i]
        tokens, labels = sample["tokens"].numpy(), sample["labels"].numpy()
        assert tokens.shape == labels.shape == (seq_len,)
        assert np.array_equal(tokens[1:], labels[:-1])
        # Megatron packs documents (shuffled) back to back: cut at eod, the inner pieces are whole
        # train documents and the outer ones are pieces of train documents.
        window = np.concatenate([tokens, labels[-1:]]).astype(np.int64)
        cuts = [0, *(np.flatnonzero(window == eos) + 1).tolist(), window.size]
        pieces = [window[a:b] for a, b in itertools.pairwise(cuts) if b > a]
        for k, piece in enumerate(pieces):
            inner = 0 < k < len(pieces) - 1
            assert (piece.tobytes() in whole) if inner else (piece.tobytes() in stream), (i, k)
        eod_seen |= len(pieces) > 1
    assert eod_seen


def test_readme_nanogpt_snippet_runs(
    build: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    build_dir, manifest = build
    readme = (build_dir / "README.md").read_text()
    snippet = readme.split("## nanoGPT", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(build_dir)
    scope: dict[str, Any] = {}
    exec(compile(snippet, "README.md", "exec"), scope)
    x, y = scope["get_batch"](4, 32)
    assert x.shape == y.shape == (4, 32) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert int(x.max()) < manifest["tokenizer"]["vocab_size"]


def test_readme_torch_example_runs(
    build: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The top-level README's DataLoader example (a ```py block: tests/test_readme.py runs the
    ```python ones without torch), against a build at corpus/build/main."""
    build_dir, _ = build
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```py\n(.*?)```", readme, flags=re.S) if "TokenDataLoader" in b]
    monkeypatch.chdir(build_dir.parent.parent.parent)  # <tmp>/corpus/build/main
    scope: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert scope["state"]["epoch"] == 1 and scope["batch"]["input_ids"].shape[1] == 512
