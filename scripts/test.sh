#!/usr/bin/env bash
# The one test command (README.md, .ci/run): from a fresh clone it creates .venv, builds and
# installs phicorpus with its test dependencies, checks formatting and lints, and runs the Rust
# unit tests and the pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# The exercise sandbox (phicorpus.verify.sandbox) needs bubblewrap from Debian's packages. CI runs
# on a fresh Debian machine as root: install it there. Elsewhere the sandbox tests say why they skip.
if ! command -v bwrap >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing bubblewrap"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
fi

# `phicorpus report` is tested in a real headless Chromium (driven by Playwright, which is told
# to use this binary: it downloads no browser of its own). Same guard as bubblewrap.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing chromium"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

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
# The tests that need PyTorch run in the second test command, scripts/test-torch.sh (.ci/run runs both).
"$VPY" -m pytest -q -m "not torch" "$@"
