"""How strongly a sandbox worker and each of its runs are isolated from the host.

Levels, strongest first (each worker reports which one it reached, and so does every verdict):

- ``namespaces+uid``: the worker runs in new network, mount, PID and IPC namespaces, and is
  the PID namespace's init. The network has only a downed loopback. The whole filesystem is
  read-only, except private tmpfs mounts on /tmp, /var/tmp, /dev/shm and /run. Configured
  paths (the data dir) are hidden under empty tmpfs. /proc shows only the worker's own
  processes. Each run drops to a per-worker unprivileged uid. Needs root (or CAP_SYS_ADMIN +
  CAP_SETUID).
- ``namespaces``: the same namespaces inside a user namespace (for an unprivileged service).
  There is no separate uid, so the process-count limit counts the service user's processes.
- ``rlimits``: no namespaces are permitted. Each run gets rlimits, its own session and a
  scrubbed environment, and nothing else: no network or filesystem isolation. This level is
  reported as a warning, never silently.

Every level also sets rlimits (address space, CPU, file size, open files, processes, no core
dumps), ``no_new_privs``, a parent-death signal, stdin from /dev/null, captured output and a
scrubbed environment. After each run, everything the run started is killed: ``kill(-1)`` from
the namespace's init, or the run's process group at the ``rlimits`` level.
"""
from __future__ import annotations

import os
import resource
import signal
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.sandbox import linux

LEVELS = ("namespaces+uid", "namespaces", "rlimits")
RUN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
           "PYTHONDONTWRITEBYTECODE": "1"}
PRIVATE_TMPFS = ("/tmp", "/var/tmp", "/dev/shm", "/run")


def _result_fd() -> int:
    """1000, or the highest descriptor this process may open where its hard limit is lower (a
    worker started under `ulimit -n 256` would otherwise fail every run)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1000 if hard == resource.RLIM_INFINITY or hard > 1000 else max(3, hard - 1)


# The run's answer channel sits above the descriptors a program might sweep shut (0-255, and its
# own limit of `Limits.nofile`), so code that closes "every" fd does not lose a correct answer.
# Runs are forks of their worker, so the worker and its runs agree on it.
RESULT_FD = _result_fd()
# What a run exits with when its answer channel was closed under it anyway (see child.emit).
RESULT_CHANNEL_LOST = 86


@dataclass
class WorkerPlan:
    """What a worker should set up; `level` "auto" takes the strongest the host allows."""

    level: str = "auto"
    uid: int = 64000
    hide: list[str] = field(default_factory=list)
    tmpfs_mb: int = 256

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class IsolationReport:
    level: str
    features: list[str]
    missing: list[str]
    warnings: list[str]

    def as_dict(self) -> dict:
        return asdict(self)


def _namespace_flags() -> int:
    return linux.CLONE_NEWNS | linux.CLONE_NEWNET | linux.CLONE_NEWPID | linux.CLONE_NEWIPC | linux.CLONE_NEWUTS


def _enter_user_namespace(flags: int) -> None:
    uid, gid = os.getuid(), os.getgid()
    linux.unshare(linux.CLONE_NEWUSER | flags)
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
    Path("/proc/self/gid_map").write_text(f"0 {gid} 1")


def enter_namespaces(level: str) -> str:
    """Unshare as the plan allows. Returns the level reached (the caller then forks the init)."""
    if level == "rlimits":
        return "rlimits"
    if level in ("auto", "namespaces+uid") and os.geteuid() == 0:
        try:
            linux.unshare(_namespace_flags())
            return "namespaces+uid"
        except OSError:
            if level == "namespaces+uid":
                raise
    try:
        _enter_user_namespace(_namespace_flags())
        return "namespaces"
    except OSError:
        if level == "namespaces":
            raise
    return "rlimits"


def _remount_read_only(mount_point: str) -> bool:
    try:
        keep = os.statvfs(mount_point).f_flag & linux.ST_KEEP
        linux.mount(None, mount_point, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY | keep)
        return True
    except OSError:
        return False


def _runtime_paths() -> list[str]:
    """What runs must be able to read: the interpreter, its libraries, this project."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.dirname(__file__))}
    paths.update(p for p in sys.path if p and os.path.isdir(p))
    return sorted(paths)


def _blocked_ancestor(path: str) -> str | None:
    """The outermost directory above `path` that other users cannot enter (e.g. /root, mode 700)."""
    current = "/"
    for part in [p for p in path.split("/") if p]:
        try:
            if not os.stat(current).st_mode & 0o001:
                return current
        except OSError:
            return None
        current = os.path.join(current, part)
    return None


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _hold_runtime_under(roots) -> list[tuple[str, int]]:
    """Runtime paths that a private tmpfs is about to cover (a checkout under /tmp, say),
    held open so they can be bound back on top of it."""
    paths = [p for p in _runtime_paths() if any(_under(p, root) for root in roots)]
    outermost = [p for p in paths if not any(q != p and _under(p, q) for q in paths)]
    return [(path, os.open(path, os.O_PATH | os.O_DIRECTORY)) for path in outermost]


def _bind_back(held: list[tuple[str, int]]) -> list[str]:
    problems = []
    for path, fd in held:
        try:
            os.makedirs(path, mode=0o755, exist_ok=True)
            linux.mount(f"/proc/self/fd/{fd}", path, None, linux.MS_BIND | linux.MS_REC)
        except OSError as exc:
            problems.append(f"runtime at {path} not reachable ({exc.strerror})")
        finally:
            os.close(fd)
    return problems


def preserved_runtime_paths() -> list[str]:
    """Runtime paths under private tmpfs roots (bound back in; never wiped)."""
    return [p for p in _runtime_paths() if any(_under(p, root) for root in PRIVATE_TMPFS)]


def expose_runtime(stage: str) -> list[str]:
    """Let an unprivileged uid reach the runtime even if it lives under, say, /root.

    For each closed directory above a runtime path: put an empty tmpfs (mode 755) over it and
    bind back only the child directories that lead to the runtime. Everything else in it stays
    invisible. `stage` is a scratch directory on a private tmpfs.
    """
    problems = []
    for _ in range(8):  # a closed directory inside an exposed one is handled on the next pass
        blocked: dict[str, set[str]] = {}
        for path in _runtime_paths():
            ancestor = _blocked_ancestor(path)
            if ancestor is not None and ancestor != "/":
                child = path[len(ancestor):].lstrip("/").split("/")[0]
                blocked.setdefault(ancestor, set()).add(child)
        if not blocked:
            return problems
        for ancestor, children in blocked.items():
            try:
                staged = []
                for index, child in enumerate(sorted(children)):
                    temp = os.path.join(stage, str(len(os.listdir(stage))) + f"-{index}")
                    os.mkdir(temp)
                    linux.mount(os.path.join(ancestor, child), temp, None, linux.MS_BIND | linux.MS_REC)
                    staged.append((child, temp))
                linux.mount("tmpfs", ancestor, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "size=16k,mode=755")
                for child, temp in staged:
                    target = os.path.join(ancestor, child)
                    os.mkdir(target, 0o755)
                    linux.mount(temp, target, None, linux.MS_MOVE)
                    os.rmdir(temp)
            except OSError as exc:
                problems.append(f"runtime under {ancestor} not reachable ({exc.strerror})")
                return problems
    return problems


def setup_filesystem(plan: WorkerPlan) -> list[str]:
    """Inside the new mount and PID namespaces, as their root. Returns what could not be done."""
    problems = []
    linux.mount("none", "/", None, linux.MS_REC | linux.MS_PRIVATE)
    held = _hold_runtime_under(PRIVATE_TMPFS)
    linux.mount("tmpfs", "/tmp", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, f"size={plan.tmpfs_mb}m,mode=1777")
    for path in PRIVATE_TMPFS[1:]:
        if os.path.isdir(path):
            try:
                linux.mount("tmpfs", path, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "size=8m,mode=1777")
            except OSError:
                problems.append(f"private {path}")
    problems += _bind_back(held)
    stage = "/tmp/.stage"
    os.mkdir(stage, 0o700)
    problems += expose_runtime(stage)
    os.rmdir(stage)
    with open("/proc/self/mountinfo") as fh:
        mount_points = sorted({line.split()[4].replace("\\040", " ") for line in fh}, key=len)
    for mount_point in mount_points:
        if mount_point not in PRIVATE_TMPFS and not _remount_read_only(mount_point) and mount_point == "/":
            problems.append("read-only root")
    for path in plan.hide:
        if os.path.isdir(path):
            try:
                linux.mount("tmpfs", path, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_RDONLY,
                            "size=4k,mode=755")
            except OSError:
                problems.append(f"hide {path}")
    try:
        linux.mount("proc", "/proc", "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    except OSError:
        problems.append("private /proc")
    return problems


def report_for(level: str, problems: list[str]) -> IsolationReport:
    features = ["rlimits (memory, cpu, file size, open files, processes)", "own session",
                "scrubbed environment", "stdin /dev/null", "output captured and capped", "no_new_privs"]
    missing, warnings = [], []
    if level in ("namespaces+uid", "namespaces"):
        features += ["network namespace (no network)", "mount namespace (read-only filesystem)",
                     "PID namespace (every leftover process killed after each run)", "IPC namespace"]
    else:
        missing += ["network isolation", "filesystem isolation", "PID namespace"]
        warnings.append("sandbox fallback: namespaces are not permitted here, so sandboxed code can reach "
                        "the network and write the user's files; run as root or enable user namespaces")
    if level == "namespaces+uid":
        features.append("unprivileged uid per worker")
    else:
        missing.append("separate uid")
    for problem in problems:
        missing.append(problem)
        warnings.append(f"sandbox could not set up: {problem}")
    return IsolationReport(level, features, missing, warnings)


def confine_run(result_w: int, output_w: int, limits, run_dir: str, uid: int | None,
                own_pid_namespace: bool) -> None:
    """In a freshly forked run, before any untrusted code: give up everything it does not need."""
    os.setsid()
    if not own_pid_namespace:  # in a PID namespace, the kernel kills the run if its init dies
        linux.set_parent_death_signal(signal.SIGKILL)
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(output_w, 1)
    os.dup2(output_w, 2)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft <= RESULT_FD:  # dup2 needs the number under the limit; the run's own limit comes later
        resource.setrlimit(resource.RLIMIT_NOFILE, (RESULT_FD + 1, hard))
    os.dup2(result_w, RESULT_FD)
    os.closerange(3, RESULT_FD)
    os.closerange(RESULT_FD + 1, max(soft, RESULT_FD + 24))
    memory = limits.memory_mb << 20
    for rlimit, value in (
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_CPU, limits.effective_cpu_s),
        (resource.RLIMIT_FSIZE, limits.file_mb << 20),
        (resource.RLIMIT_NOFILE, limits.nofile),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(rlimit, (value, value))
    if uid is not None or own_pid_namespace:
        # Per uid: meaningful when the run has a uid of its own (or a PID namespace to clean up).
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.nproc, limits.nproc))
    sys.set_int_max_str_digits(0)  # P3 has puzzles with 9,000-digit numbers; time limits bound the cost
    os.chdir(run_dir)  # the environment was set once for the whole worker: see set_run_environment
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    # no_new_privs was set once in the worker and is inherited (see zygote.main).


def kill_leftovers(run_pid: int, own_pid_namespace: bool) -> None:
    """After a run: kill it and everything it started, and reap them."""
    if own_pid_namespace:
        try:
            os.kill(-1, signal.SIGKILL)  # as the namespace's init: every other process in it
        except ProcessLookupError:
            pass  # nothing left
    else:
        for target in (-run_pid, run_pid):  # the run's session/process group, then itself
            try:
                os.kill(target, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    while True:
        try:
            pid, _ = os.waitpid(-1, 0 if own_pid_namespace else os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break


def set_run_environment(run_dir: str) -> None:
    """Once per worker (its runs inherit it): only what code needs, nothing of the service's."""
    os.environ.clear()
    os.environ.update(RUN_ENV, HOME=run_dir, TMPDIR=run_dir)


def prepare_run_dir(run_dir: str, uid: int | None) -> None:
    """Once per worker: the runs' working directory, owned by the runs' uid."""
    os.makedirs(run_dir, mode=0o700, exist_ok=True)
    if uid is not None:
        os.chown(run_dir, uid, uid)
    os.chmod(run_dir, 0o700)


def wipe(folder: str, keep: str, spare: tuple[str, ...] = ()) -> None:
    """Leave nothing of one run for the next (its files, sockets, planted modules).

    `folder` is the private /tmp in the namespaced levels, the worker's own temporary
    directory at the `rlimits` level (never the host's /tmp); `keep` (the run directory)
    stays, emptied; `spare` (runtime bound back under /tmp) and the directories leading to
    it are left alone. Usually there is nothing to do, and this costs one directory read.
    """
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.path == keep:
                _remove_tree(entry.path, remove_self=False)
            elif any(_under(path, entry.path) for path in spare):
                continue
            else:
                _remove_entry(entry)


def _remove_entry(entry: os.DirEntry) -> None:
    try:
        if entry.is_dir(follow_symlinks=False):
            _remove_tree(entry.path, remove_self=True)
        else:
            os.unlink(entry.path)
    except OSError:
        pass


def _remove_tree(path: str, remove_self: bool) -> None:
    try:
        os.chmod(path, 0o700)  # a run may have made its directories unreadable
        with os.scandir(path) as entries:
            for entry in entries:
                _remove_entry(entry)
        if remove_self:
            os.rmdir(path)
    except OSError:
        pass


_PROBE = """
import json, os, sys
sys.path.insert(0, {root!r})
from engine.sandbox import isolation
level = isolation.enter_namespaces({level!r})
print(json.dumps(level))
"""


def probe(level: str = "auto", python: str = sys.executable) -> IsolationReport:
    """What a worker asked for `level` would reach here, tried in a throwaway process (~50 ms)."""
    import subprocess

    root = str(Path(__file__).resolve().parents[2])
    try:
        out = subprocess.run([python, "-I", "-c", _PROBE.format(root=root, level=level)], capture_output=True, text=True,
                             timeout=30, env={"PATH": RUN_ENV["PATH"]})
        level = out.stdout.strip().strip('"') if out.returncode == 0 else "rlimits"
    except (OSError, subprocess.TimeoutExpired):
        level = "rlimits"
    return report_for(level if level in LEVELS else "rlimits", [])
