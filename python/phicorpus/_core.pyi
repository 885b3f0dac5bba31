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
