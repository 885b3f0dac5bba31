"""Run untrusted generated code in a bubblewrap sandbox; the verdict comes from the parent.

The sandbox (``bwrap`` from Debian's ``bubblewrap`` package):

- every namespace unshared (``--unshare-all``): no network (only an isolated loopback), its own
  PID namespace (``/proc`` shows only the sandbox), IPC, UTS, cgroup and user namespaces;
- the system read-only (``/usr`` and the interpreter's prefix bound read-only), nothing else of
  the host visible: a private, size-limited ``/tmp``; ``HOME`` is the read-only task directory;
- an empty environment (the launcher itself starts with one, so no secret is in any process of
  the sandbox, ``/proc/1/environ`` included);
- run as ``nobody`` when started by root, with limits on address space, CPU seconds, processes,
  file size and open files; the whole process group is SIGKILLed at the time limit, and the
  sandbox's PID 1 dies with its parent, which takes every process in the namespace with it.

The verdict: a harness in the sandbox runs the solution, then the tests, in one namespace and
only then writes the per-run nonce (which the parent sent on stdin) to a pipe to the parent.
A run passes only if it exits 0 *and* the pipe holds the nonce. What the code prints, or an early
``exit(0)``, cannot make it pass.

If bubblewrap is missing or cannot create its namespaces, :func:`probe` says why and nothing is
ever executed.

Example:
    >>> sandbox = Sandbox.probe(SandboxLimits())  # doctest: +SKIP
    >>> sandbox.run("def f(): return 1\\n", "assert f() == 1\\n").passed  # doctest: +SKIP
    True
"""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunVerdict", "Sandbox", "SandboxLimits", "SandboxUnavailable"]

# Root runs each sandbox under a uid of its own from this range (no passwd entry needed), so the
# process limit counts only that run's processes and a dying run never starves the next one.
UID_BASE = 3_000_000
UID_SPAN = 1_000_000

HARNESS = r"""
import os, sys, traceback
def _run():
    nonce, fd = sys.stdin.readline().split()
    fd = int(fd)
    sys.stdin.close()
    os.set_inheritable(fd, False)
    ns = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        with open("/task/solution.py") as fh:
            solution = fh.read()
        with open("/task/tests.py") as fh:
            tests = fh.read()
        exec(compile(solution, "solution.py", "exec"), ns)
        exec(compile(tests, "tests.py", "exec"), ns)
    except SystemExit:
        print("harness: the code exited before its tests finished", file=sys.stderr)
        os._exit(3)
    except BaseException:
        traceback.print_exc()
        os._exit(1)
    sys.stdout.flush()
    os.write(fd, nonce.encode())
    os._exit(0)
_run()
"""


class SandboxUnavailable(RuntimeError):
    """No sandbox can start here; nothing is executed."""


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    timeout: float = 10.0  # wall-clock seconds
    memory_mb: int = 1024  # address space
    processes: int = 64
    file_mb: int = 16
    open_files: int = 64
    tmp_mb: int = 64


@dataclass(frozen=True, slots=True)
class RunVerdict:
    passed: bool
    reason: str  # passed | failed | timeout | exited-early | no-verdict | ...
    seconds: float
    output: str  # tail of stdout+stderr, for the record


def _interpreter() -> tuple[str, list[str]]:
    """The Python to run inside and the host directories it needs (read-only)."""
    if Path("/usr/bin/python3").exists():
        return "/usr/bin/python3", []
    base = Path(sys.base_prefix).resolve()
    exe = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    return str(exe), [str(base)]


class Sandbox:
    def __init__(self, bwrap: str, limits: SandboxLimits) -> None:
        self.bwrap = bwrap
        self.limits = limits
        self.python, self.extra_ro = _interpreter()
        self.as_root = os.geteuid() == 0

    @classmethod
    def probe(cls, limits: SandboxLimits) -> Sandbox:
        """A working sandbox, or :class:`SandboxUnavailable` saying why not (nothing was run)."""
        bwrap = shutil.which("bwrap")
        if not bwrap:
            raise SandboxUnavailable("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
        sandbox = cls(bwrap, limits)
        verdict = sandbox.run("x = 1\n", "assert x == 1\n")
        if not verdict.passed:
            raise SandboxUnavailable(
                f"bubblewrap cannot start a sandbox here: {verdict.output.strip()[-300:]}"
            )
        return sandbox

    def _argv(self, task: Path) -> list[str]:
        argv = [
            self.bwrap,
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        for name in ("bin", "lib", "lib64", "sbin"):
            host = Path("/") / name
            if host.is_symlink():
                argv += ["--symlink", os.readlink(host), f"/{name}"]
            elif host.is_dir():
                argv += ["--ro-bind", str(host), f"/{name}"]
        for path in self.extra_ro:
            argv += ["--ro-bind", path, path]
        argv += [
            "--proc", "/proc", "--dev", "/dev",
            "--size", str(self.limits.tmp_mb << 20), "--tmpfs", "/tmp",
            "--ro-bind", str(task), "/task",
            "--chdir", "/tmp", "--hostname", "sandbox", "--clearenv",
            "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/task", "--setenv", "LANG", "C.UTF-8",
            "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
            "--cap-drop", "ALL",
            self.python, "-I", "/task/harness.py",
        ]  # fmt: skip
        return argv

    def _limit(self, uid: int) -> None:  # runs in the child between fork and exec
        lim = self.limits
        mem = lim.memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        cpu = int(lim.timeout) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_FSIZE, (lim.file_mb << 20, lim.file_mb << 20))
        resource.setrlimit(resource.RLIMIT_NOFILE, (lim.open_files, lim.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if self.as_root:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)  # root ignores RLIMIT_NPROC; a fresh unprivileged uid does not
            resource.setrlimit(resource.RLIMIT_NPROC, (lim.processes, lim.processes))
        # Not root: the uid's other processes count too, so no RLIMIT_NPROC; the PID namespace
        # and the time limit still end a fork bomb.

    def run(self, solution: str, tests: str) -> RunVerdict:
        """Run ``solution`` then ``tests`` in a fresh sandbox; passed only with exit 0 and the nonce."""
        nonce = secrets.token_hex(16)
        uid = UID_BASE + secrets.randbelow(UID_SPAN)
        self.last_uid = uid
        with tempfile.TemporaryDirectory(prefix="phicorpus-sandbox-") as tmp:
            root = Path(tmp)
            task = root / "task"
            task.mkdir()
            (task / "harness.py").write_text(HARNESS)
            (task / "solution.py").write_text(solution)
            (task / "tests.py").write_text(tests)
            for path in (root, task, *task.iterdir()):
                path.chmod(0o755 if path.is_dir() else 0o644)
            out_path = root / "output"
            out_path.touch(0o600)
            read_fd, write_fd = os.pipe()
            start = time.monotonic()
            timed_out = False
            with open(out_path, "wb") as out:
                try:
                    proc = subprocess.Popen(
                        self._argv(task),
                        stdin=subprocess.PIPE,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        pass_fds=(write_fd,),
                        preexec_fn=lambda: self._limit(uid),
                        env={"PATH": "/usr/bin:/bin"},
                        start_new_session=True,
                        close_fds=True,
                    )
                except OSError as exc:
                    os.close(read_fd)
                    os.close(write_fd)
                    return RunVerdict(False, "no-sandbox", 0.0, str(exc))
                os.close(write_fd)
                try:
                    assert proc.stdin is not None
                    with contextlib.suppress(BrokenPipeError):
                        proc.stdin.write(f"{nonce} {write_fd}\n".encode())
                        proc.stdin.close()
                    proc.wait(timeout=self.limits.timeout)
                except subprocess.TimeoutExpired:
                    timed_out = True
                finally:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)  # the whole group, whatever the outcome
                    proc.wait()
            seconds = time.monotonic() - start
            os.set_blocking(read_fd, False)
            try:
                got = os.read(read_fd, 64)
            except BlockingIOError:
                got = b""
            finally:
                os.close(read_fd)
            output = out_path.read_bytes()[-4000:].decode("utf-8", "replace")
        if timed_out:
            return RunVerdict(False, "timeout", seconds, output)
        if proc.returncode == 0 and got == nonce.encode():
            return RunVerdict(True, "passed", seconds, output)
        if proc.returncode == 3:
            return RunVerdict(False, "exited-early", seconds, output)
        if proc.returncode == 0:
            return RunVerdict(False, "no-verdict", seconds, output)  # exit 0 without the nonce
        if proc.returncode < 0:
            return RunVerdict(False, f"killed-by-signal-{-proc.returncode}", seconds, output)
        return RunVerdict(False, "failed", seconds, output)
