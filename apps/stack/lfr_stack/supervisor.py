"""circus, the local stack's process supervisor, driven through its control socket.

circusd runs with no process of its own configuration: the stack adds each process (a "watcher" of
one process) with its command line and environment, and circus starts it, restarts it when it dies
(checked every second), and stops it on request. Its control socket is a Unix socket in the stack's
folder (`run/circus.sock`): no port to choose, and only this user can reach it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from lfr_stack.processes import MARKER, StackError, pid_alive, private_files

# Seconds a stopping process gets after SIGTERM before SIGKILL: a service stops well within it
# (lfr_platform.runtime gives its tasks 15 s).
GRACEFUL_S = 20


class Supervisor:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.run_dir = self.root / "run"
        self.endpoint = f"ipc://{self.run_dir / 'circus.sock'}"

    # --- its own process ---------------------------------------------------------------------
    def start(self, env: dict[str, str], log_file: Path, *, foreground: bool) -> int:
        """Start circusd; with `foreground`, it ends (and with it every process it holds) when this
        process ends, however it ends. Returns its pid once it answers."""
        from lfr_stack.child import die_with_parent

        with private_files():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            config = self.run_dir / "circus.ini"
            config.write_text(
                "[circus]\n"
                f"endpoint = {self.endpoint}\n"
                f"pubsub_endpoint = ipc://{self.run_dir / 'pubsub.sock'}\n"
                "statsd = false\n"
                "check_delay = 1\n"
            )
            process = subprocess.Popen(
                [sys.executable, "-m", "circus.circusd", str(config)],
                env={**env, MARKER: str(self.root)},
                stdout=open(log_file, "ab"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent if foreground else None,
            )
        deadline = time.monotonic() + 30
        while not self.answers():
            if process.poll() is not None:
                raise StackError(f"the supervisor (circusd) exited with {process.returncode}; see {log_file}")
            if time.monotonic() > deadline:
                raise StackError(f"the supervisor (circusd) does not answer after 30 s; see {log_file}")
            time.sleep(0.1)
        return process.pid

    def answers(self) -> bool:
        """circusd runs and answers on its control socket (a socket file left by a killed one does not)."""
        if not (self.run_dir / "circus.sock").exists():
            return False
        try:
            self.call("status", timeout_s=2)
            return True
        except StackError:
            return False

    def quit(self) -> None:
        """Stop every process it holds (SIGTERM, then SIGKILL after GRACEFUL_S), then itself."""
        self.call("quit", waiting=True, timeout_s=GRACEFUL_S + 30)

    # --- the processes it holds ----------------------------------------------------------------
    def add(self, name: str, argv: list[str], env: dict[str, str], log_file: Path) -> None:
        """Start `argv` as the process `name`, through lfr_stack.child (dies with the supervisor,
        backs off when it keeps dying), its output appended to `log_file`."""
        starts = self.run_dir / f"{name}.starts"
        starts.unlink(missing_ok=True)  # a new process: its restarts are counted from now
        stream = {"class": "FileStream", "filename": str(log_file)}
        options = {
            "env": {**env, MARKER: str(self.root)},
            "working_dir": str(Path.cwd()),
            "respawn": True,
            "graceful_timeout": GRACEFUL_S,
            "stdout_stream": stream,
            "stderr_stream": stream,
        }
        args = ["-m", "lfr_stack.child", str(starts), "--", *argv]
        self.call("add", name=name, cmd=sys.executable, args=args, options=options, start=True)

    def remove(self, name: str) -> None:
        """Stop the process `name` for good (SIGTERM, then SIGKILL after GRACEFUL_S)."""
        self.call("rm", name=name, waiting=True, timeout_s=GRACEFUL_S + 30)

    def names(self) -> list[str]:
        return list(self.call("list").get("watchers", []))

    def pid(self, name: str) -> int | None:
        """The running process of `name`, or None (stopped, or between a death and its restart)."""
        pids = [p for p in self.call("list", name=name).get("pids", []) if pid_alive(p)]
        return pids[0] if pids else None

    def kill(self, name: str) -> int:
        """SIGKILL the process `name` (the supervisor then starts it again); returns the pid killed."""
        pid = self.pid(name)
        if pid is None:
            raise StackError(f"{name} has no running process")
        self.call("signal", name=name, signum=signal.SIGKILL)
        return pid

    def halt(self, name: str, *, abruptly: bool = False) -> None:
        """Stop `name` and keep it stopped (until `resume`); `abruptly`: SIGKILL, as a crash would."""
        if abruptly:
            self.call("set", name=name, options={"stop_signal": signal.SIGKILL})
        try:
            self.call("stop", name=name, waiting=True, timeout_s=GRACEFUL_S + 30)
        finally:
            if abruptly:
                self.call("set", name=name, options={"stop_signal": signal.SIGTERM})

    def resume(self, name: str) -> None:
        self.call("start", name=name, waiting=True)

    # --- the control socket ----------------------------------------------------------------------
    def call(self, command: str, timeout_s: float = 10, **properties) -> dict:
        """One command; while the supervisor is busy with another (it runs one at a time, and a start
        goes on after its command returned), the command is sent again until `timeout_s` has passed."""
        from circus.client import CircusClient
        from circus.exc import CallError

        deadline = time.monotonic() + timeout_s
        while True:
            client = CircusClient(endpoint=self.endpoint, timeout=timeout_s)
            try:
                answer = client.call({"command": command, "properties": properties})
            except CallError as exc:
                raise StackError(f"the supervisor did not answer {command!r}: {exc}") from exc
            finally:
                client.stop()
            if answer.get("status") == "ok":
                return answer
            reason = str(answer.get("reason", answer))
            if "is already running" not in reason or time.monotonic() > deadline:
                raise StackError(f"the supervisor refused {command!r}: {reason}")
            time.sleep(0.05)
