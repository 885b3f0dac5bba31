#!/usr/bin/env bash
# The second test command (README "Tests", .ci/run runs it after scripts/test.sh): the tests marked
# `torch` — phicorpus.torch_loader through PyTorch's DataLoader (0 and 2 workers, fork and spawn)
# and Megatron-LM's own readers over phicorpus shards. PyTorch from PyPI on Linux x86_64 depends on
# its CUDA wheels (nvidia-*, triton): about 5.3 GB and 5-6 minutes to install on the 2-core machine
# (it cannot import without them), which is why these tests are not in scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
VPY=.venv/bin/python
if "$VPY" -c "import phicorpus._core" 2>/dev/null; then
    # scripts/test.sh built and installed phicorpus: add only the torch-test extra's packages.
    # shellcheck disable=SC2046
    "$VPY" -m pip install -q --disable-pip-version-check $("$VPY" -c \
        "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['torch-test']))")
else
    "$VPY" -m pip install -q --disable-pip-version-check ".[test,torch-test]"
fi

echo "== pytest (torch)"
"$VPY" -m pytest -q -m torch "$@"
