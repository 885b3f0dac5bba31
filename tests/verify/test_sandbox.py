"""The sandbox contains hostile code, and the verdict cannot be forged from inside."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from phicorpus.verify.sandbox import Sandbox, SandboxLimits, SandboxUnavailable

LIMITS = SandboxLimits(timeout=1.5, memory_mb=512, processes=32)


def _sandbox() -> Sandbox | None:
    try:
        return Sandbox.probe(LIMITS)
    except SandboxUnavailable:
        return None


SANDBOX = _sandbox()
needs_sandbox = pytest.mark.skipif(SANDBOX is None, reason="bubblewrap cannot create namespaces here")


def _uid_processes(uid: int) -> int:
    """Live processes whose real uid is ``uid`` (from /proc: the uid has no passwd entry).

    Zombies are left out: a dead sandbox's PID 1 can wait a moment for the container's init to reap it.
    """
    n = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        if fields.get("Uid", "").split()[:1] == [str(uid)] and not fields.get("State", "").strip().startswith(
            "Z"
        ):
            n += 1
    return n


@needs_sandbox
def test_a_correct_solution_passes() -> None:
    assert SANDBOX is not None
    verdict = SANDBOX.run("def add(a, b):\n    return a + b\n", "assert add(2, 3) == 5\n")
    assert verdict.passed and verdict.reason == "passed"


@needs_sandbox
@pytest.mark.parametrize(
    ("name", "solution", "tests"),
    [
        ("wrong answer", "def f():\n    return 1\n", "assert f() == 2\n"),
        ("prints passed, exits 0 early", "print('passed')\nimport sys\nsys.exit(0)\n", "assert False\n"),
        ("os._exit(0) early", "print('all tests passed')\nimport os\nos._exit(0)\n", "assert False\n"),
        ("infinite loop", "while True:\n    pass\n", "assert True\n"),
        ("10 GB allocation", "x = bytearray(10 * 1024 ** 3)\n", "assert len(x) > 0\n"),
        ("writes a huge file", "open('/tmp/big', 'wb').write(b'x' * (200 << 20))\n", "assert True\n"),
        (
            "fork bomb",
            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
            "assert True\n",
        ),
    ],
)
def test_hostile_code_fails(name: str, solution: str, tests: str) -> None:
    assert SANDBOX is not None
    start = time.monotonic()
    verdict = SANDBOX.run(solution, tests)
    assert not verdict.passed, name
    assert verdict.reason != "passed"
    assert time.monotonic() - start < LIMITS.timeout + 5
    if os.geteuid() == 0:
        uid = SANDBOX.last_uid
        deadline = time.monotonic() + 10
        while _uid_processes(uid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _uid_processes(uid) == 0, f"{name}: processes of the sandbox survived it"


@needs_sandbox
def test_filesystem_network_and_secrets_are_out_of_reach(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert SANDBOX is not None
    canary = tmp_path / "canary.txt"
    canary.write_text("alive")
    home_canary = Path.home() / ".phicorpus-canary"
    home_canary.write_text("alive")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-canary-123")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        attacks = {
            "rm -rf ~": "import os, shutil\nshutil.rmtree(os.path.expanduser('~'))\n",
            "rm canary": f"import os\nos.remove({str(canary)!r})\n",
            "write system": "open('/usr/bin/evil', 'w').write('x')\n",
            "loopback to host": (
                f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
            ),
            "internet": "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=1)\n",
            "api key from env": "import os\nk = os.environ['OPENAI_API_KEY']\n",
            "api key from /proc": (
                "import glob\nblob = ''\nfor p in glob.glob('/proc/*/environ'):\n    try:\n"
                "        blob += open(p, 'rb').read().decode('latin1')\n    except OSError:\n        pass\n"
                "assert 'sk-secret-canary' in blob, 'no key found'\n"
            ),
        }
        for name, code in attacks.items():
            verdict = SANDBOX.run(code, "assert True\n")
            assert not verdict.passed, name
            assert "sk-secret-canary" not in verdict.output, name
        listener.settimeout(0.2)
        with pytest.raises(socket.timeout):
            listener.accept()
    finally:
        listener.close()
    assert canary.read_text() == "alive"
    assert home_canary.read_text() == "alive"
    home_canary.unlink()


def test_no_bwrap_means_nothing_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on PATH
    with pytest.raises(SandboxUnavailable, match="not installed"):
        Sandbox.probe(LIMITS)


def test_a_bwrap_that_cannot_create_namespaces_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "bwrap"
    marker = tmp_path / "ran"
    fake.write_text(
        f"#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\ntouch {marker}\nexit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    with pytest.raises(SandboxUnavailable, match="cannot start"):
        Sandbox.probe(LIMITS)
