"""`fraud demo` as a newcomer runs it: no warnings, and its closing next steps work as printed."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from contracts.net import free_port
from contracts.settings import REPO_ROOT
from tests.support.processes import started

FRAUD = str(Path(sys.executable).parent / "fraud")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory, second_redis_url: str) -> subprocess.CompletedProcess:
    """One demo in a data dir and Redis db of its own, with its own registry (as on a fresh machine)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env |= {"FRAUD_DATA_DIR": str(tmp_path_factory.mktemp("demo-world")), "REDIS_URL": second_redis_url}
    return subprocess.run([FRAUD, "demo"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def steps(demo_run: subprocess.CompletedProcess) -> dict[str, str]:
    """The commands of the demo's closing lines, by program, with the environment they export."""
    assert demo_run.returncode == 0, demo_run.stderr[-3000:]
    tail = demo_run.stdout.split("Next steps.", 1)[1]
    commands = [" ".join(part.split()) for part in re.split(r"\n  \$ ", tail)[1:]]
    commands[-1] = commands[-1].split(" Reports:", 1)[0]
    found = {command.split()[0].rsplit("/", 1)[-1]: command for command in commands}
    assert {"export", "fraud", "curl", "mlflow", "feast"} <= set(found), commands
    found["model list"] = next(c for c in commands if c.endswith("model list"))
    found["serve"] = next(c for c in commands if " serve " in c)
    return found


@pytest.fixture(scope="module")
def step_env(steps: dict[str, str]) -> dict[str, str]:
    exported = dict(item.split("=", 1) for item in shlex.split(steps["export"])[1:])
    return {**os.environ, **exported}


def test_demo_prints_no_warning(demo_run: subprocess.CompletedProcess) -> None:
    assert demo_run.returncode == 0, demo_run.stderr[-3000:]
    output = demo_run.stdout + demo_run.stderr
    assert "Warning" not in output and "warnings.warn" not in output, output[-3000:]


def test_demo_next_steps_name_the_world_it_built(demo_run, step_env: dict[str, str]) -> None:
    data_dir = Path(step_env["FRAUD_DATA_DIR"])
    assert (data_dir / "features").is_dir() and (data_dir / "raw").is_dir()
    reports = re.search(r"Reports: evaluation (\S+); drift (\S+)", demo_run.stdout)
    assert reports, demo_run.stdout[-2000:]
    assert all(Path(path).is_file() for path in reports.groups())


def test_demo_next_steps_serve_and_answer_the_readmes_request(steps: dict[str, str], step_env) -> None:
    port = str(free_port())
    serve = shlex.split(steps["serve"].replace("--port 8000", f"--port {port}"), comments=True)
    assert serve[-1] == "&"  # printed to run in the background
    serve = serve[:-1]
    curl = steps["curl"].replace("localhost:8000", f"localhost:{port}")
    assert curl in " ".join((REPO_ROOT / "README.md").read_text().replace("8000", port).split())
    with started(serve, step_env, f"http://127.0.0.1:{port}/health", cwd=REPO_ROOT):
        answered = subprocess.run(curl, shell=True, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    answer = httpx.Response(200, content=answered.stdout).json()
    assert answer["decision"] in {"approve", "review", "block"} and answer["model_version"] == "1"


def test_demo_next_steps_list_the_champion(steps: dict[str, str], step_env) -> None:
    listed = subprocess.run(
        shlex.split(steps["model list"]), cwd=REPO_ROOT, env=step_env, capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0, listed.stderr
    assert "champion" in listed.stdout


def test_demo_next_steps_open_mlflow_ui_on_its_registry(steps: dict[str, str], step_env) -> None:
    port = str(free_port())
    ui = shlex.split(steps["mlflow"].replace("--port 5000", f"--port {port}"))
    with started(ui, step_env, f"http://127.0.0.1:{port}/health", cwd=REPO_ROOT):
        found = httpx.get(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/registered-models/search", params={"max_results": 10}
        )
    assert [model["name"] for model in found.json()["registered_models"]] == ["fraud_detector"]


def test_demo_next_steps_open_feast_ui_on_its_registry(steps: dict[str, str], step_env) -> None:
    port = str(free_port())
    ui = shlex.split(steps["feast"].replace("--port 8888", f"--port {port}"))
    with started(ui, step_env, f"http://127.0.0.1:{port}/health", cwd=REPO_ROOT):
        views = httpx.get(f"http://127.0.0.1:{port}/api/v1/feature_views", params={"project": "fraud_detection"})
    assert "customer_state" in views.text
