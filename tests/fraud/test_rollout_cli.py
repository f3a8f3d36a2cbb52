"""`fraud rollout` as an operator runs it, on a world of its own (data dir, SQLite registry)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from contracts.settings import Settings
from tests.support.registry import register
from training.lifecycle import approve, promote

FRAUD = str(Path(sys.executable).parent / "fraud")


@pytest.fixture()
def world(tmp_path: Path, settings: Settings) -> Path:
    """A registry with v1 champion and v2 approved, in a data dir of its own."""
    world = tmp_path / "world"
    local = Settings(data_dir=world, redis_url=settings.redis_url, mlflow_tracking_uri="")
    v1, v2 = register(local, 1), register(local, 2)
    for version in (v1, v2):
        approve(local, version, by="alice", note="ok")
    promote(local, v1, by="alice", reason="first")
    return world


def fraud(world: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env |= {"FRAUD_DATA_DIR": str(world), "COLUMNS": "200"}
    return subprocess.run([FRAUD, *args], cwd=world.parent, env=env, capture_output=True, text=True, timeout=300)


def test_rollout_commands_start_show_refuse_and_stop_a_challenger(world: Path) -> None:
    assert fraud(world, "rollout", "status").stdout.strip() == "no rollout"

    started = fraud(world, "rollout", "start", "2", "--mode", "canary", "--share", "0.1", "--by", "bob")
    assert started.returncode == 0, started.stderr
    assert "challenger: v2, canary, share 0.1 (bob," in started.stdout
    status = fraud(world, "rollout", "status").stdout
    assert "challenger v2: canary, share 0.1, since 20" in status and "by bob" in status

    refused = fraud(world, "rollout", "share", "2", "--by", "bob")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == ["error: rollout share 2.0 is not between 0 and 1"]

    stopped = fraud(world, "rollout", "stop", "--by", "carol", "--reason", "enough")
    assert stopped.returncode == 0, stopped.stderr
    assert "rollout of v2 stopped (carol," in stopped.stdout
    audit = fraud(world, "model", "audit").stdout
    assert "challenger_start" in audit and "challenger_stop" in audit and "enough" in audit
