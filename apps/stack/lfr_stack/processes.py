"""Processes and ports of the local stack, found and stopped from outside."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

# Every process of a stack carries this variable, set to the stack's folder: what `make down` looks
# for in /proc, so that it finds them all even when the state file is gone or stale.
MARKER = "LFR_STACK_ROOT"


class StackError(RuntimeError):
    pass


def _ephemeral_ports() -> range:
    """The ports the kernel gives outgoing connections (Linux: 32768-60999 by default)."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return range(low, high + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


def free_port() -> int:
    """A port free now, for a process started next to listen on: only where an address must stay the
    same across restarts (the broker, Redis, the gRPC APIs, the console's page), since a port chosen
    by probing can be taken before it is bound. Taken below the kernel's ephemeral range, so that no
    process's outgoing connection (to the broker, to Redis) can be given it meanwhile. Everything else
    binds port 0 and is found where the kernel put it (`listening_ports`)."""
    ephemeral = _ephemeral_ports()
    candidates = [p for p in range(20000, 32768) if p not in ephemeral]
    for port in random.sample(candidates, k=min(200, len(candidates))):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # nothing free below the range: let the kernel choose
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise StackError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise StackError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


def listening_ports(pid: int) -> set[int]:
    """The TCP ports a process listens on (its own sockets, from the kernel)."""
    import psutil

    try:
        return {c.laddr.port for c in psutil.Process(pid).net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN}
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return set()


def pid_alive(pid: int) -> bool:
    """The process runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc: trust the signal
    return state not in ("Z", "X")


def stop_process(pid: int, grace_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace_s`."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child: poll for its end instead
            if not pid_alive(pid):
                return
            finished = 0
        if finished:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def marked_processes(root: Path) -> list[int]:
    """Every live process whose environment marks it as one of the stack in `root`."""
    marker = f"{MARKER}={Path(root).resolve()}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0") and pid_alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return sorted(found)


def stop_marked(root: Path, grace_s: float = 10.0) -> list[int]:
    """Stop every process of the stack in `root` that is still running; returns their pids."""
    pids = marked_processes(root)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return pids


@contextlib.contextmanager
def private_files():
    """Files and folders made meanwhile (here and by the processes started) are the user's alone:
    0600 and 0700. Logs, watchlist shards and Redis's file name deployments and officers."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)
