"""Child processes of `lakeport dev`: started in their own process group, stopped as a group.

Every service (PostgreSQL, the S3 endpoint, the code servers, the webserver, the daemon,
and the tests' own servers) is one `ServiceProcess`, and `wait_until_ready` is the one
place that decides when it has started: its probe answers, or it exited, or time ran out.

Every service runs in a new session, so Ctrl-C in the terminal reaches only the
supervisor, which then stops the services in order; stopping a service signals its whole
process group, so whatever it started in that group (the daemon's run workers and their
step processes) goes too. The supervisor is also made a child subreaper: a grandchild
that outlives its parent is re-parented to the supervisor instead of init, where the
final sweep (`reap_orphans`) finds and stops it.
"""

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_PDEATHSIG = 1
# Children whose Popen collects their exit status; reap_children leaves them alone.
_OWNED: set[int] = set()


class ServiceError(RuntimeError):
    """A local service could not start; the message says what to install or change."""


class Stopped(Exception):
    """A signal asked us to stop while a service was starting."""


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux only); False where the kernel has no such thing."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the supervisor dies, even by SIGKILL."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def find_executable(name: str, install_hint: str) -> str:
    """The program beside this Python (the venv) or on PATH; else say what to install."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if not found:
        raise ServiceError(f"{name} not found next to {sys.executable} or on PATH: {install_hint}")
    return found


@dataclass
class ServiceProcess:
    """One long-running program in its own session and process group, its output in a log
    file (or discarded when there is none)."""

    name: str
    argv: Sequence[str]
    log_file: Path | None
    env: dict[str, str] | None = None
    cwd: Path | None = None
    # The user to run as (PostgreSQL refuses root); None: ourselves.
    user: str | None = None
    # What asks the program to stop; PostgreSQL's fast shutdown is SIGINT.
    stop_signal: int = signal.SIGTERM
    # SIGTERM when the supervisor dies, even by SIGKILL. Only safe for a process started
    # from a thread that outlives it: the kernel sends it when the *thread* exits.
    die_with_parent: bool = True
    _process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> None:
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                list(self.argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, cwd=self.cwd, user=self.user, start_new_session=True,
                preexec_fn=(_die_with_parent
                            if self.die_with_parent and sys.platform.startswith("linux")
                            else None),
            )
        finally:
            if self.log_file is not None:
                log.close()
        _OWNED.add(self._process.pid)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._process.poll() if self._process else None

    def log_tail(self, lines: int = 25) -> str:
        return log_tail(self.log_file, lines)

    def stop(self, timeout: float = 20) -> None:
        """`stop_signal` to the process group, SIGKILL to the group after `timeout`."""
        if self._process is None:
            return
        pgid = self._process.pid  # the leader of its own session and group
        if self._process.poll() is None:
            _signal_group(pgid, self.stop_signal)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(pgid, signal.SIGKILL)
                self._process.wait()
        # The leader is gone; members it did not take with it get a grace period, then KILL.
        deadline = time.monotonic() + timeout
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        _signal_group(pgid, signal.SIGKILL)


class ServerProcess:
    """Base of a server class that starts one `ServiceProcess` of its own (PostgreSQL, the
    S3 endpoint): its pid, whether it runs, and stopping it, all through that process."""

    _service: ServiceProcess | None = None

    @property
    def pid(self) -> int | None:
        return self._service.pid if self._service else None

    def running(self) -> bool:
        return self._service is not None and self._service.running()

    def stop(self, timeout: float = 30) -> None:
        if self._service is not None:
            self._service.stop(timeout)


def wait_until_ready(
    service: ServiceProcess,
    ready: Callable[[], bool],
    timeout: float,
    *,
    what: str | None = None,
    hint: str = "",
    stop_requested: threading.Event | None = None,
    interval: float = 0.2,
) -> None:
    """Poll `ready` until it is true. Fail with a `ServiceError` naming `what` (the
    service's name by default) when the process exits first, with its code, `hint` and the
    end of its log, when `timeout` seconds pass, or when `ready` itself raises one; the
    service is stopped first, so a failed start leaves nothing running. Raise `Stopped`
    when asked to stop (the caller stops what it started)."""
    what = what or service.name
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if stop_requested is not None and stop_requested.is_set():
                raise Stopped()
            if not service.running():
                because = f" ({hint})" if hint else ""
                raise ServiceError(
                    f"{what} exited with code {service.returncode} while starting{because}; "
                    f"last lines of {service.log_file or 'its output (not kept)'}:\n"
                    f"{service.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise ServiceError(f"{what} did not become ready within {timeout:.0f}s; "
                                   f"see {service.log_file or 'its output (not kept)'}")
            time.sleep(interval)
    except ServiceError:
        service.stop()
        raise


def log_tail(path: Path | None, lines: int = 25) -> str:
    """The last lines of a log file, or "(no log)"."""
    try:
        text = path.read_text(errors="replace") if path else ""
    except OSError:
        text = ""
    return "\n".join(text.splitlines()[-lines:]) or "(no log)"


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombies adopted by us (the subreaper) still count; reap them so they stop counting.
    reap_children()
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def reap_children() -> None:
    """Collect exit statuses of finished children no Popen waits for (adopted orphans)."""
    for pid in children_of(os.getpid()):
        if pid in _OWNED:
            continue
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def children_of(pid: int) -> list[int]:
    """Direct children of `pid` (Linux /proc); empty elsewhere."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ..."; comm may contain spaces and parentheses.
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def descendants_of(pid: int) -> list[int]:
    result, queue = [], [pid]
    while queue:
        for child in children_of(queue.pop()):
            result.append(child)
            queue.append(child)
    return result


def reap_orphans(timeout: float = 10) -> list[int]:
    """Stop every remaining descendant of this process; return the pids that needed it."""
    leftover = descendants_of(os.getpid())
    for pid in leftover:
        _kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reap_children()
        if not descendants_of(os.getpid()):
            return leftover
        time.sleep(0.1)
    for pid in descendants_of(os.getpid()):
        _kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    reap_children()
    return leftover


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
