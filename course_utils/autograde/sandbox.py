"""The sandbox around one submission: bubblewrap, an unprivileged uid, no network, limits, a deadline.

Each submission runs in its own ``bwrap`` with new PID, network, IPC and UTS namespaces; the whole file
system read-only; the instructor's source notebooks, the gradebook, the results folder and every other
submission hidden behind empty tmpfs mounts; one scratch folder (bound at ``/tmp/grading``) writable. Inside,
the process drops to uid/gid 65534 with no capabilities (``setpriv``), so it can neither read root-only
files nor re-enter another namespace. Memory (address space), CPU time, file size and process count are
limited with ``setrlimit``; the whole sandbox is killed at the wall-clock deadline, and since the runner is
PID 1's child in its own PID namespace, ending the sandbox ends every process in it — also one that called
``setsid`` or forked a daemon. The grader waits on nothing without a timeout.

:func:`available` says whether this machine can run it; the grading command refuses untrusted grading
without it unless ``--trusting`` is given.
"""
from __future__ import annotations

import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SandboxSpec", "available", "command", "run_sandboxed", "INSIDE"]

INSIDE = "/tmp/grading"           # where the scratch folder appears inside the sandbox
NOBODY = 65534


@dataclass(frozen=True)
class SandboxSpec:
    scratch: Path                 # the submission's own writable folder
    hide: tuple[Path, ...]        # folders that must be invisible inside (replaced by empty tmpfs)
    network: bool = False
    env: tuple[tuple[str, str], ...] = ()


def _tools() -> tuple[str | None, str | None]:
    return shutil.which("bwrap"), shutil.which("setpriv")


_AVAILABLE: tuple[bool, str] | None = None


def available() -> tuple[bool, str]:
    """``(True, description)`` when bubblewrap can run a sandbox here; else ``(False, why and the fix)``."""
    global _AVAILABLE
    if _AVAILABLE is not None:
        return _AVAILABLE
    bwrap, setpriv = _tools()
    if not bwrap or not setpriv:
        _AVAILABLE = (False, "bubblewrap (bwrap) or setpriv is not installed: `apt-get install bubblewrap` "
                             "(setpriv is in util-linux)")
        return _AVAILABLE
    if os.geteuid() != 0:
        _AVAILABLE = (False, "the grader must run as root to build the sandbox (it drops every submission to "
                             "uid 65534 inside)")
        return _AVAILABLE
    probe = subprocess.run([bwrap, "--unshare-pid", "--unshare-net", "--ro-bind", "/", "/", "--proc", "/proc",
                            "--dev", "/dev", setpriv, "--reuid", str(NOBODY), "--regid", str(NOBODY),
                            "--clear-groups", "true"], capture_output=True, timeout=60)
    _AVAILABLE = (probe.returncode == 0, "bubblewrap: own PID/network/IPC/UTS namespaces, uid 65534, "
                  "read-only root, one writable scratch folder" if probe.returncode == 0 else
                  f"bubblewrap failed here: {probe.stderr.decode(errors='replace').strip()[:200]}")
    return _AVAILABLE


def _needs_bind(path: Path) -> Path | None:
    """The top-most ancestor of ``path`` that uid 65534 cannot traverse (e.g. /root for a pyenv python)."""
    for parent in reversed(path.resolve().parents):
        try:
            mode = parent.stat().st_mode
        except OSError:
            return None
        if not mode & stat.S_IXOTH:
            return parent
    return None


def command(spec: SandboxSpec, argv: list[str]) -> list[str]:
    """The bwrap command line that runs ``argv`` in the sandbox described by ``spec``."""
    bwrap, setpriv = _tools()
    cmd = [bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
           "--die-with-parent", "--new-session", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
           "--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]
    if not spec.network:
        cmd.append("--unshare-net")
    # what the sandbox must read: the interpreter, the venv and the package (bind them where an ancestor,
    # such as /root for a pyenv python, is closed to uid 65534)
    import course_utils
    needed = {Path(sys.base_prefix), Path(sys.prefix), Path(course_utils.__file__).parent.parent}
    data = os.environ.get("COURSE_DATA_DIR")
    if data:
        needed.add(Path(data))
    # /tmp and /dev/shm are fresh tmpfs inside: what lives there (a checkout in /tmp) is bound back
    fresh = (Path("/tmp"), Path("/dev/shm"))
    closed: dict[Path, set[Path]] = {}
    for p in needed:
        p = p.resolve()
        top = next((f for f in fresh if p.is_relative_to(f) and p != f), None) or _needs_bind(p)
        if top is not None:       # bind the first folder below the closed one (bwrap makes new parents 0700)
            closed.setdefault(top, set()).add(top / p.relative_to(top).parts[0])
    for top, paths in closed.items():
        if top not in fresh:
            cmd += ["--tmpfs", str(top)]
        for p in sorted(paths):
            cmd += ["--ro-bind", str(p), str(p)]
    for h in spec.hide:
        if h.exists():
            cmd += ["--tmpfs", str(h.resolve())]
    cmd += ["--bind", str(spec.scratch), INSIDE, "--chdir", INSIDE, "--clearenv"]
    for k, v in spec.env:
        cmd += ["--setenv", k, v]
    cmd += ["--", setpriv, "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", *argv]
    return cmd


def _limits(memory_mb: int, cpu_seconds: int, file_mb: int = 1024, processes: int = 512):
    # runs in the forked child before exec, possibly while other grading threads run: only setrlimit calls,
    # no imports (the import lock may be held by another thread at the fork) and no new session (Popen's
    # start_new_session does that)
    def apply():
        mem = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 10))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_mb * 1024 * 1024,) * 2)
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
    return apply


def run_sandboxed(cmd: list[str], log: Path, timeout: float, memory_mb: int, cpu_seconds: int) -> tuple[int | None, bool]:
    """Run ``cmd`` (from :func:`command` or a trusting prefix) with limits; ``(returncode, timed_out)``.

    Output goes to the file ``log`` (never a pipe that a child could hold open). At the deadline the
    process group is killed; bwrap's ``--die-with-parent`` and the PID namespace take everything inside.
    """
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=_limits(memory_mb, cpu_seconds), start_new_session=True,
                                close_fds=True)
        try:
            return proc.wait(timeout=timeout), False
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            return None, True
