# Type stubs for the Rust extension module phicorpus._core (kept by hand, see src/python/).
__version__: str

# --- dedup (src/python/dedup.rs) ---
from collections.abc import Sequence as _Sequence

import numpy as _np
import numpy.typing as _npt

def normalize_text(text: str) -> str: ...
def shingles(text: str, ngram: int = 5) -> list[str]: ...
def minhash_signatures(
    texts: _Sequence[str],
    num_perm: int = 128,
    ngram: int = 5,
    seed: int = 1,
    num_threads: int | None = None,
) -> _npt.NDArray[_np.uint32]: ...
def lsh_clusters(
    signatures: _npt.NDArray[_np.uint32], bands: int, rows: int, num_threads: int | None = None
) -> _npt.NDArray[_np.int64]: ...
def lsh_params(
    threshold: float,
    num_perm: int,
    false_positive_weight: float = 0.5,
    false_negative_weight: float = 0.5,
) -> tuple[int, int]: ...
def exact_hashes(texts: _Sequence[str], num_threads: int | None = None) -> _npt.NDArray[_np.uint64]: ...
