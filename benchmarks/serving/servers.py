"""The three servers: how each is started, waited for, read from and stopped.

ours   `fraud serve` (the whole scorer), `POST /score`;
feast  Feast's own feature server (`feast serve` in feature_repo/), `POST /get-online-features`;
bare   benchmarks/bare_app.py under uvicorn: validation and a constant answer, the framework's ceiling.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.serving.prepare import fraud_command
from benchmarks.support.errors import SetupError
from benchmarks.support.processes import stop_group
from contracts.settings import REPO_ROOT

FEATURE_REPO = REPO_ROOT / "feature_repo"
SERVER_LABELS = {"ours": "ours: fraud serve", "feast": "Feast feature server", "bare": "bare FastAPI"}
START_TIMEOUT_S = 240  # Feast's server and ours load a registry, a model: slow on a busy 2-core machine
HEALTH_POLL_S = 0.3


@dataclass
class ServerSpec:
    """How to start one server, and where it answers one payment and a batch."""

    name: str
    command: list[str]
    env: dict[str, str]
    cwd: Path
    path: str
    batch_path: str

    def describe(self) -> str:
        """The command line, its program by name only, and where it runs."""
        program, *rest = self.command
        return f"{' '.join([Path(program).name, *rest])}  (cwd {self.cwd.relative_to(REPO_ROOT.parent)})"


def server_specs(
    workers: int, env: dict[str, str], fenv: dict[str, str], ports: dict[str, int]
) -> dict[str, ServerSpec]:
    """The three servers, each with `workers` worker processes, on the given ports.

    Feast's flags make it a fair peer: `--no-access-log` because its gunicorn logs every
    request by default and ours and bare log none; `--max-requests 0` because its default
    (1000, with jitter 50) restarts each worker every ~1000 requests, which would put
    process starts and cold caches inside the measurement.
    """
    feast = shutil.which("feast", path=str(Path(sys.executable).parent)) or shutil.which("feast")
    if not feast:
        raise SetupError("the feast command is not installed in this environment")
    count = str(workers)
    return {
        "ours": ServerSpec(
            "ours",
            [*fraud_command("serve"), "--host", "127.0.0.1", "--port", str(ports["ours"]), "--workers", count],
            env,
            REPO_ROOT,
            "/score",
            "/score/batch",
        ),
        "feast": ServerSpec(
            "feast",
            [
                feast,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(ports["feast"]),
                "--workers",
                count,
                "--no-access-log",
                "--max-requests",
                "0",
            ],
            fenv,
            FEATURE_REPO,
            "/get-online-features",
            "/get-online-features",
        ),
        "bare": ServerSpec(
            "bare",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "benchmarks.bare_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(ports["bare"]),
                "--workers",
                count,
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env,
            REPO_ROOT,
            "/score",
            "/score/batch",
        ),
    }


@contextlib.contextmanager
def running(spec: ServerSpec, log: Path, base_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """The server started in a process group of its own, once it answers /health; stopped, group and all, after."""
    with log.open("ab") as handle:
        process = subprocess.Popen(
            spec.command, env=spec.env, cwd=spec.cwd, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_healthy(process, base_url)
        yield process
    finally:
        stop_group(process)


def _wait_healthy(process: subprocess.Popen[bytes], base_url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise SetupError(f"exited with code {process.returncode} before answering /health")
        with contextlib.suppress(httpx.TransportError):  # not listening yet
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise SetupError(f"did not answer {base_url}/health within {START_TIMEOUT_S} s")
        time.sleep(HEALTH_POLL_S)


def describe_answer(name: str, text: str) -> str:
    """One line saying what the first answer held: the servers got the same data."""
    try:
        answer = json.loads(text)
        if name == "ours":
            return (
                f"risk {answer['risk_score']:.3f}, {answer['decision']}, model v{answer['model_version']}, "
                f"{len(answer['missing_features'])} features missing online"
            )
        if name == "feast":
            statuses = [s for row in answer["results"] for s in row.get("statuses", [])]
            return (
                f"{len(answer['metadata']['feature_names'])} columns (entity keys included), "
                f"{statuses.count('PRESENT')} of {len(statuses)} values PRESENT"
            )
        return f"{answer.get('decision')} (constant)"
    except (ValueError, KeyError, TypeError) as error:
        return f"unexpected answer ({error!r}): {text[:200]}"


def log_problems(path: Path) -> str:
    """Tracebacks a server logged (e.g. in a background task, after a 200 was sent)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback")]
    if not starts:
        return ""
    last = next((line for line in lines[starts[0] + 1 :] if line and not line.startswith((" ", "Traceback"))), "")
    return f"{len(starts)} tracebacks in its log, the first ending: {last[:300]}"


def log_tail(path: Path, lines: int = 30) -> str:
    """The last lines of a server's log, to show with its failure."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
