# Type stubs for the Rust extension module phicorpus._core (kept by hand, see src/python/).
__version__: str

# filter (src/python/filter.rs)
from collections.abc import Iterable
from typing import Any

import numpy.typing as npt

SIGNAL_NAMES: tuple[str, ...]

def quality_signal_columns(
    texts: Iterable[str], num_threads: int | None = None
) -> dict[str, npt.NDArray[Any]]: ...
# -- tokenize (src/python/tokenize.rs) --------------------------------------------------------
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

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
