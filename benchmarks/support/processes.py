"""Stopping what a benchmark started, whatever way the run ends."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from types import FrameType


def interrupt_on_signals() -> None:
    """Make SIGTERM, and SIGINT, raise KeyboardInterrupt so that every clean-up block runs.

    SIGINT is reset too: a non-interactive shell may have started us with it ignored.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def stop_group(process: subprocess.Popen[bytes], grace_s: float = 20) -> None:
    """SIGTERM the process group `process` leads, then SIGKILL whatever is left of it.

    The process must have been started with `start_new_session=True`, so that its group
    holds its children (gunicorn and uvicorn workers) and nothing of ours.
    """
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace_s)
    if not _group_gone(process.pid, wait_s=5):  # e.g. a worker orphaned by its master
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def _group_gone(group: int, wait_s: float) -> bool:
    """Whether process group `group` empties within `wait_s` seconds."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)  # signal 0: only asks whether anyone is left
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False
