"""The README's Python example runs as written."""

from __future__ import annotations

import os
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "README.md has no python example"
    cwd = Path.cwd()
    os.chdir(tmp_path)  # the example writes tokenizer.json
    try:
        for block in blocks:
            exec(compile(block, str(README), "exec"), {"__name__": "readme"})
    finally:
        os.chdir(cwd)
    assert (tmp_path / "tokenizer.json").exists()
