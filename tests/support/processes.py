"""Programs a test starts as a user would (a scorer, `mlflow ui`, `feast ui`), waited for and stopped."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def answers(url: str, headers: dict[str, str] | None = None) -> bool:
    """Whether `url` answers 200 now."""
    import httpx

    try:
        return httpx.get(url, headers=headers, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, process: subprocess.Popen) -> None:
    """Wait until `condition` holds; fail at once if the process exits, or after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{what}: the process exited with code {process.returncode}"
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s")


@contextmanager
def started(
    argv: list[str], env: dict[str, str], ready_url: str, cwd: Path | None = None, timeout_s: float = 180
) -> Iterator[subprocess.Popen]:
    """`argv` running until the block ends, once `ready_url` answers; stopped on the way out."""
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: answers(ready_url), timeout_s, " ".join(argv[:3]), process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
