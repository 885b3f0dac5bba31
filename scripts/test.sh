#!/usr/bin/env bash
# The one test command (README.md, .ci/run): from a fresh clone it creates .venv, builds and
# installs phicorpus with its test dependencies, checks formatting and lints, and runs the Rust
# unit tests and the pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
VPY=.venv/bin/python
"$VPY" -m pip install -q --disable-pip-version-check -U pip
"$VPY" -m pip install -q --disable-pip-version-check ".[test,dev]"

echo "== lint"
cargo fmt --check
cargo clippy --locked --features python --all-targets -- -D warnings
.venv/bin/ruff check python tests benches
.venv/bin/mypy

echo "== cargo test"
cargo test --locked

echo "== pytest"
"$VPY" -m pytest -q "$@"
