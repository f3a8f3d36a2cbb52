"""docker-compose.yml's services run as local processes: their own commands, their own environment.

There is no Docker engine here, so the test reads the compose file and starts what its
services would run: a real `mlflow server` with the compose flags (its stores in a temporary
folder standing for the `mlflow` volume), the one-shot `bootstrap` on an empty data folder
standing for the `data` volume, then the scorer (the Dockerfile's CMD) and the worker. The
compose host names become 127.0.0.1 and the test's own ports, REDIS_URL a Redis db the
module claims; a variable naming a service not run here (the trace collector) is left out.
The world is tiny (the suite's fixture size) so the whole module runs in a few minutes.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pandas as pd
import pytest
import yaml

from contracts.net import free_port
from contracts.prediction_log import PART_GLOB, log_dir
from contracts.settings import REPO_ROOT, Settings
from tests.support.processes import answers, wait_for

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
VENV_BIN = Path(sys.executable).parent
ONE_SHOT = {"bootstrap"}
PLATFORM_SERVICES = ("bootstrap", "scorer", "worker", "features", "monitor")  # the image built from the Dockerfile
DATA_MOUNT = "/data"
# The suite's small world (tests/conftest.py): a model that passes the gate in seconds.
TINY_WORLD = ("--customers", "200", "--terminals", "400", "--days", "45", "--seed", "7")
# Variables the session sets for the other tests; a service gets only what compose gives it.
SESSION_VARIABLES = ("FRAUD_", "REDIS_URL", "MLFLOW_", "OTEL_")
START_TIMEOUT_S = 180.0
BOOTSTRAP_TIMEOUT_S = 420.0


@dataclass(frozen=True)
class Stack:
    """Where the compose names point in this test."""

    compose: dict[str, Any]
    redis_url: str
    mlflow_url: str
    data_dir: Path
    logs: Path

    @property
    def settings(self) -> Settings:
        return Settings(data_dir=self.data_dir, redis_url=self.redis_url, mlflow_tracking_uri=self.mlflow_url)

    def service(self, name: str) -> dict[str, Any]:
        return self.compose["services"][name]

    def env(self, name: str) -> dict[str, str]:
        """The service's compose environment with the names mapped to this test's servers."""
        replacements = {"redis://redis:6379/0": self.redis_url, "http://mlflow:5000": self.mlflow_url}
        env = {k: v for k, v in os.environ.items() if not k.startswith(SESSION_VARIABLES)}
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"  # `fraud`, `python`, `mlflow` of this venv
        for key, value in self.service(name).get("environment", {}).items():
            value = str(value)
            if value == DATA_MOUNT:
                env[key] = str(self.data_dir)
            elif value in replacements:
                env[key] = replacements[value]
            elif urlparse(value).hostname not in self.compose["services"]:
                env[key] = value
            # else: a URL of a compose service this test does not run, left out
        return env

    def run(self, name: str, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, env=self.env(name), cwd=self.data_dir.parent, capture_output=True, text=True, timeout=timeout
        )

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        """A long-running service's process, in a session of its own (its children stop with it)."""
        log = (self.logs / f"{name}.log").open("wb")
        return subprocess.Popen(
            argv,
            env=self.env(name),
            cwd=self.data_dir.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_of(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")


def compose_file() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def dockerfile_cmd() -> list[str]:
    """The Dockerfile's CMD, in its JSON (exec) form."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("CMD ")]
    assert len(lines) == 1, "the Dockerfile has one CMD"
    return json.loads(lines[0].removeprefix("CMD "))


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def with_option(argv: list[str], name: str, value: str) -> list[str]:
    out = list(argv)
    out[out.index(name) + 1] = value
    return out


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process's session, then SIGKILL if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def healthcheck_argv(service: dict[str, Any], ports: dict[str, str], paths: dict[str, str]) -> list[str]:
    """A service's healthcheck command (CMD form) with its ports and paths mapped to this test's."""
    test = list(service["healthcheck"]["test"])
    assert test[0] == "CMD", "healthchecks use the exec form"
    argv = []
    for arg in test[1:]:
        for old, new in {**ports, **paths}.items():
            arg = arg.replace(old, new)
        argv.append(arg)
    return argv


# --- Fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, second_redis_url: str) -> Iterator[Stack]:
    """A real MLflow server started with the compose flags, an empty data folder, a claimed Redis db."""
    root = tmp_path_factory.mktemp("compose")
    (root / "logs").mkdir()
    compose = compose_file()
    port = free_port()
    argv = shlex.split(compose["services"]["mlflow"]["command"])
    argv = [arg.replace("/mlflow/", f"{root / 'mlflow'}/") for arg in argv]
    argv = with_option(with_option(argv, "--host", "127.0.0.1"), "--port", str(port))
    (root / "mlflow").mkdir()
    running = Stack(compose, second_redis_url, f"http://127.0.0.1:{port}", root / "data", root / "logs")
    server = running.start("mlflow", argv)
    try:
        wait_for(lambda: answers(f"{running.mlflow_url}/health"), START_TIMEOUT_S, "mlflow server", server)
        yield running
    finally:
        stop(server)


@pytest.fixture(scope="module")
def bootstrapped(stack: Stack) -> subprocess.CompletedProcess[str]:
    """The bootstrap service's command run to completion on the empty stack, in the tiny world."""
    argv = [*stack.service("bootstrap")["command"], *TINY_WORLD]
    return stack.run("bootstrap", argv, timeout=BOOTSTRAP_TIMEOUT_S)


@pytest.fixture(scope="module")
def scorer(stack: Stack, bootstrapped: subprocess.CompletedProcess[str]) -> Iterator[str]:
    """The scorer as the image runs it (the Dockerfile's CMD; compose gives it no command), on a free port."""
    assert bootstrapped.returncode == 0, bootstrapped.stderr
    port = str(free_port())
    process = stack.start("scorer", with_option(with_option(dockerfile_cmd(), "--host", "127.0.0.1"), "--port", port))
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(f"{base_url}/health"), START_TIMEOUT_S, "scorer", process)
        yield base_url
    finally:
        stop(process)


@pytest.fixture(scope="module")
def worker(stack: Stack, bootstrapped: subprocess.CompletedProcess[str]) -> Iterator[subprocess.Popen[bytes]]:
    assert bootstrapped.returncode == 0, bootstrapped.stderr
    process = stack.start("worker", list(stack.service("worker")["command"]))
    try:
        yield process
    finally:
        stop(process)


# --- The compose file itself ----------------------------------------------------------------


# Images with nothing inside to run a check with (built FROM scratch).
UNPROBEABLE = ("otel-collector",)


def test_every_long_running_service_has_a_healthcheck_and_restarts_unless_stopped() -> None:
    services = compose_file()["services"]
    long_running = sorted(set(services) - ONE_SHOT)
    no_check = [
        name
        for name in long_running
        if services[name].get("healthcheck", {}).get("test") is None and name not in UNPROBEABLE
    ]
    for name in UNPROBEABLE:  # said so, not forgotten
        assert services[name]["healthcheck"] == {"disable": True}, name
    no_restart = [name for name in long_running if services[name].get("restart") != "unless-stopped"]
    assert no_check == [], f"long-running services without a healthcheck: {no_check}"
    assert no_restart == [], f"long-running services without restart: unless-stopped: {no_restart}"
    assert services["bootstrap"].get("restart", "no") == "no", "the one-shot bootstrap must not be restarted"


def test_platform_services_share_the_data_volume_and_wait_for_bootstrap() -> None:
    compose = compose_file()
    assert "data" in compose["volumes"], "/data is a named volume (it takes the image's owner, uid 10001)"
    for name in PLATFORM_SERVICES:
        service = compose["services"][name]
        assert f"data:{DATA_MOUNT}" in service["volumes"], name
        assert service["environment"]["FRAUD_DATA_DIR"] == DATA_MOUNT, name
        if name != "bootstrap":
            condition = service["depends_on"]["bootstrap"]["condition"]
            assert condition == "service_completed_successfully", name
    assert compose["services"]["bootstrap"]["depends_on"]["mlflow"]["condition"] == "service_healthy"


def test_scorer_command_and_port_match_the_dockerfile() -> None:
    scorer = compose_file()["services"]["scorer"]
    cmd = dockerfile_cmd()
    assert cmd[:2] == ["fraud", "serve"] and option(cmd, "--host") == "0.0.0.0"
    assert scorer.get("command", cmd) == cmd
    port = option(cmd, "--port")
    assert [str(mapping).rsplit(":", 1)[1] for mapping in scorer["ports"]] == [port]
    assert f"127.0.0.1:{port}/health" in " ".join(scorer["healthcheck"]["test"])
    assert f"EXPOSE {port}" in DOCKERFILE.read_text()


# --- The services, run ----------------------------------------------------------------------


def test_mlflow_server_accepts_the_services_host_header_and_refuses_others(stack: Stack) -> None:
    search = f"{stack.mlflow_url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert httpx.get(search, headers={"Host": "mlflow:5000"}, timeout=10).status_code == 200
    assert httpx.get(search, headers={"Host": "attacker.example"}, timeout=10).status_code == 403


def test_mlflow_healthcheck_passes_against_the_running_server(stack: Stack) -> None:
    port = str(urlparse(stack.mlflow_url).port)
    argv = healthcheck_argv(stack.service("mlflow"), {"127.0.0.1:5000": f"127.0.0.1:{port}"}, {})
    assert stack.run("mlflow", argv, timeout=30).returncode == 0


def test_bootstrap_trains_and_promotes_a_champion_into_the_shared_data_folder(
    stack: Stack, bootstrapped: subprocess.CompletedProcess[str]
) -> None:
    from contracts.registry import alias_version, registry_client

    assert bootstrapped.returncode == 0, bootstrapped.stderr
    settings = stack.settings
    assert alias_version(registry_client(settings), settings) == "1"
    assert (settings.feast_dir / "registry.db").is_file()
    assert list(settings.raw_dir.glob("*.parquet"))
    assert any(settings.offline_dir.iterdir())


def test_scorer_scores_with_the_bootstrapped_champion_and_the_worker_logs_it(
    stack: Stack, scorer: str, worker: subprocess.Popen[bytes]
) -> None:
    from data.raw_store import RawStore

    settings = stack.settings
    known = RawStore(settings).load().iloc[-1]
    payment = {
        "transaction_id": "compose-1",
        "tx_datetime": datetime.now(UTC).isoformat(),
        "customer_id": int(known["customer_id"]),
        "terminal_id": int(known["terminal_id"]),
        "tx_amount": 42.5,
        "device_id": known["device_id"],
    }
    response = httpx.post(f"{scorer}/score", json=payment, timeout=30)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["decision"] in {"approve", "review", "block"}
    assert answer["model_version"] == "1"

    def logged() -> bool:
        files = sorted(log_dir(settings).glob(f"*/{PART_GLOB}"))
        return bool(files) and "compose-1" in set(pd.read_parquet(files)["transaction_id"].astype(str))

    wait_for(logged, 60, "the worker's prediction log row", worker)


def test_worker_healthcheck_passes_while_it_reads_and_fails_once_it_stops(
    stack: Stack, worker: subprocess.Popen[bytes]
) -> None:
    argv = healthcheck_argv(stack.service("worker"), {}, {})
    wait_for(lambda: stack.run("worker", argv, timeout=30).returncode == 0, 90, "worker healthcheck", worker)
    stop(worker)
    failed = stack.run("worker", argv, timeout=30)
    assert failed.returncode != 0
    assert "start `fraud worker`" in failed.stderr.replace("\n", " ")


def test_features_loop_heartbeat_healthcheck_tells_a_running_loop_from_a_stale_one(
    stack: Stack, bootstrapped: subprocess.CompletedProcess[str], tmp_path: Path
) -> None:
    beat = tmp_path / "loop.beat"
    service = stack.service("features")
    argv = [arg.replace("/tmp/loop.beat", str(beat)) for arg in service["command"]]
    check = healthcheck_argv(service, {}, {"/tmp/loop.beat": str(beat)})
    assert stack.run("features", check, timeout=30).returncode != 0, "no heartbeat yet: unhealthy"
    loop = stack.start("features", argv)
    try:
        wait_for(beat.exists, 60, "the features loop's heartbeat", loop)
        assert stack.run("features", check, timeout=30).returncode == 0
        an_hour_ago = time.time() - 3600
        os.utime(beat, (an_hour_ago, an_hour_ago))
        assert stack.run("features", check, timeout=30).returncode != 0, "a stale heartbeat: unhealthy"
    finally:
        stop(loop)


def test_bootstrap_again_does_nothing_once_a_champion_serves(
    stack: Stack, bootstrapped: subprocess.CompletedProcess[str]
) -> None:
    from training.lifecycle import list_versions

    assert bootstrapped.returncode == 0, bootstrapped.stderr
    settings = stack.settings
    raw_parts = sorted(settings.raw_dir.glob("*"))
    again = stack.run("bootstrap", [*stack.service("bootstrap")["command"], *TINY_WORLD], timeout=120)
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout
    assert [v.version for v in list_versions(settings)] == ["1"]
    assert sorted(settings.raw_dir.glob("*")) == raw_parts
