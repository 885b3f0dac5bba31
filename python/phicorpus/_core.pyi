# Type stubs for the Rust extension module phicorpus._core (kept by hand, see src/python/).
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__version__: str

#: Texts of a batch call: str, or an Arrow string array's buffers ``(int64 offsets, uint8 data)``.
Texts = Iterable[str] | tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]

# -- filter (src/python/filter.rs) ----------------------------------------------------------

SIGNAL_NAMES: tuple[str, ...]

def quality_signal_columns(texts: Texts, num_threads: int | None = None) -> dict[str, npt.NDArray[Any]]: ...

# -- tokenize (src/python/tokenize.rs) --------------------------------------------------------

class BpeTokenizer:
    """Byte-level BPE tokenizer from a tokenizer.json (see phicorpus.tokenize.Tokenizer)."""

    @staticmethod
    def from_file(path: str) -> BpeTokenizer: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def max_id(self) -> int: ...
    def token_to_id(self, token: str) -> int | None: ...
    def id_to_token(self, id: int) -> str | None: ...
    def encode(self, text: str, add_special_tokens: bool = True) -> npt.NDArray[np.uint32]: ...
    def encode_batch(
        self,
        texts: Sequence[str],
        add_special_tokens: bool = True,
        num_threads: int | None = None,
        uint16: bool = False,
    ) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64]]: ...
    def decode(self, ids: npt.NDArray[np.uint32], skip_special_tokens: bool = True) -> str: ...

# -- dedup (src/python/dedup.rs) -----------------------------------------------------------

def normalize_text(text: str) -> str: ...
def shingles(text: str, ngram: int = 5) -> list[str]: ...
def minhash_signatures(
    texts: Sequence[str],
    num_perm: int = 128,
    ngram: int = 5,
    seed: int = 1,
    num_threads: int | None = None,
) -> npt.NDArray[np.uint32]: ...
def lsh_clusters(
    signatures: npt.NDArray[np.uint32], bands: int, rows: int, num_threads: int | None = None
) -> npt.NDArray[np.int64]: ...
def lsh_params(
    threshold: float,
    num_perm: int,
    false_positive_weight: float = 0.5,
    false_negative_weight: float = 0.5,
) -> tuple[int, int]: ...
def lsh_dedup(
    signatures: npt.NDArray[np.uint32],
    priority: npt.NDArray[np.int64],
    bands: int,
    rows: int,
    threshold: float,
    max_reps: int = 256,
    num_threads: int | None = None,
) -> npt.NDArray[np.int64]: ...
def lsh_recall_params(threshold: float, num_perm: int, min_recall: float = 0.95) -> tuple[int, int]: ...
def exact_hashes(texts: Sequence[str], num_threads: int | None = None) -> npt.NDArray[np.uint64]: ...

# -- corpus stages (src/python/corpus.rs) -----------------------------------------------------

CODE_SIGNAL_NAMES: tuple[str, ...]

def utf8_stats(
    datas: list[bytes],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...
def code_signal_columns(texts: Texts, num_threads: int | None = None) -> dict[str, npt.NDArray[Any]]: ...
def edu_train(
    texts: Sequence[str],
    labels: npt.NDArray[np.float32],
    bits: int = 18,
    ngram: int = 2,
    epochs: int = 8,
    lr: float = 0.5,
    l2: float = 1e-6,
    seed: int = 0,
    num_threads: int | None = None,
) -> tuple[npt.NDArray[np.float32], float]: ...
def edu_score(
    texts: Texts,
    weights: npt.NDArray[np.float32],
    bias: float,
    ngram: int = 2,
    num_threads: int | None = None,
) -> npt.NDArray[np.float32]: ...

class NgramIndex:
    """Hashed word n-grams of benchmark texts, each with its benchmark label."""

    def __init__(
        self, texts: Sequence[str], labels: Sequence[int], ngram: int = 13, num_threads: int | None = None
    ) -> None: ...
    def __len__(self) -> int: ...
    @property
    def ngram(self) -> int: ...
    def query(
        self, texts: Texts, num_threads: int | None = None
    ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64]]: ...

# -- shard (src/python/shard.rs) -------------------------------------------------------------

class ShardWriter:
    """Writes one Megatron .bin/.idx pair (see phicorpus.shard)."""

    def __init__(self, bin_path: str, idx_path: str, dtype: str, eos_id: int | None = None) -> None: ...
    def add_texts(
        self,
        texts: Sequence[str],
        tokenizer: BpeTokenizer,
        add_special_tokens: bool = False,
        num_threads: int | None = None,
    ) -> None: ...
    def add_utf8(
        self,
        offsets: npt.NDArray[np.int64],
        data: npt.NDArray[np.uint8],
        tokenizer: BpeTokenizer,
        add_special_tokens: bool = False,
        num_threads: int | None = None,
    ) -> None: ...
    def add_ids(self, ids: npt.NDArray[np.uint32], offsets: npt.NDArray[np.int64]) -> None: ...
    def add_from(
        self,
        readers: Sequence[ShardReader],
        sources: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int64],
    ) -> None: ...
    @property
    def documents(self) -> int: ...
    @property
    def tokens(self) -> int: ...
    def finish(self) -> dict[str, Any]: ...

class ShardReader:
    """Reads a Megatron .bin/.idx pair with positional reads (see phicorpus.shard)."""

    def __init__(self, bin_path: str, idx_path: str) -> None: ...
    def __len__(self) -> int: ...
    @property
    def dtype(self) -> str: ...
    def lengths(self) -> npt.NDArray[np.int32]: ...
    def document(self, i: int) -> npt.NDArray[np.uint32]: ...
