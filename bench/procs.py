"""Ports and child processes, for the bench and the rostest checkers that run ROS graphs of
their own: a free TCP port; a child in its own process group, its output in a log file,
stopped as Ctrl-C stops it and then killed with whatever it left behind (``Process``); and a
child whose output lines a checker reads as they come, stopped with Ctrl-C then SIGKILL, the
child alone (``ProcessOutput``).

Imported as ``bench.procs`` (the repository root on the path): by bench/ (its scripts run as
modules from the repository root: ``python -m bench.run_bench``), by pytest (pytest.ini's
``pythonpath``) and by the rostest checkers (their ``.test`` file adds the package root to the
test node's PYTHONPATH). No ROS here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import List, Optional


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free now (the system picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A child process in its own process group, its output in a log file."""

    def __init__(self, name: str, args: List[str], log_dir: Path, env: Optional[dict] = None):
        self.name, self.args = name, args
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "a")
        self.spawned = time.monotonic()
        self.popen = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                      start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self, sig=signal.SIGKILL) -> None:
        """Signal the whole group (the process and its children), by its id."""
        if self.alive():
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 20.0) -> None:
        """SIGINT (Ctrl-C), then SIGKILL of its group after ``timeout`` s."""
        if self.alive():
            self.kill(signal.SIGINT)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        # Children that outlived their parent (roslaunch's nodes) are still in the group.
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.popen.poll() is None:
            self.popen.wait(timeout=10)
        self._log.close()


class ProcessOutput:
    """The output lines of ``popen`` (started with ``stdout=PIPE``, ``text=True``), read in a
    thread so that its pipe never fills up; ``lines`` grows as the child writes."""

    def __init__(self, popen: subprocess.Popen):
        if popen.stdout is None:
            raise ValueError("ProcessOutput needs a child started with stdout=subprocess.PIPE")
        self.popen = popen
        self.lines: List[str] = []
        stdout = popen.stdout
        self._reader = threading.Thread(target=lambda: self.lines.extend(iter(stdout.readline, "")), daemon=True)
        self._reader.start()

    def text(self) -> str:
        return "".join(self.lines)

    def stop(self, timeout: float = 15.0) -> str:
        """SIGINT (Ctrl-C), then SIGKILL after ``timeout`` s; the child's whole output."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._reader.join(timeout=10)
        return self.text()
