"""`fraud serve` in a process of its own, as the demo and the daily replay start it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx

from contracts.net import free_port
from contracts.settings import Settings

START_TIMEOUT_S = 120.0


@contextlib.contextmanager
def scorer_process(settings: Settings) -> Iterator[str]:
    """The scorer serving `settings`' world on a free port until the block ends; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "FRAUD_DATA_DIR": str(settings.data_dir),
        "REDIS_URL": settings.redis_url,
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "FRAUD_SCORING_STREAM": settings.scoring_stream,
        "FRAUD_MODEL_NAME": settings.model_name,
    }
    process = subprocess.Popen([sys.executable, "-m", "fraud", "serve", "--port", str(port)], env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base_url, process)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_until_healthy(base_url: str, process: subprocess.Popen[bytes], timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the scorer exited with code {process.returncode} before answering")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"the scorer did not answer {base_url}/health within {timeout_s:.0f} s")
