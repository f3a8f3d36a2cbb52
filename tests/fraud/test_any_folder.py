"""The `fraud` command works from any folder, and from the package as installed (not editable)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from contracts.settings import REPO_ROOT
from feature_repo.store import FEATURE_REPO_DIR

FRAUD = str(Path(sys.executable).parent / "fraud")
NOT_SOURCES = (".git", ".venv", ".fraud-data", "build", "*.egg-info", "__pycache__", ".*_cache", "tests", "benchmarks")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project installed as a wheel into a folder of its own (its dependencies are the venv's)."""
    target, source = tmp_path_factory.mktemp("site-packages"), tmp_path_factory.mktemp("source") / "checkout"
    # Built from a copy: a build writes build/ and *.egg-info/ beside the sources it builds.
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return target


def run_installed(installed: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(installed)}
    return subprocess.run(
        [sys.executable, "-m", "fraud", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_installed_package_is_the_one_imported_and_carries_its_files(installed: Path, tmp_path: Path) -> None:
    code = "import feature_repo, serving; print(feature_repo.__file__); print(serving.__file__)"
    env = {**os.environ, "PYTHONPATH": str(installed)}
    shown = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert all(Path(line).is_relative_to(installed) for line in shown.stdout.split())
    assert (installed / "feature_repo" / "feature_store.yaml").is_file()
    assert (installed / "serving" / "static" / "docs" / "swagger-ui-bundle.js").is_file()


def test_installed_package_applies_and_evaluates_from_a_foreign_folder(
    installed: Path, tmp_path: Path, transactions, feature_store
) -> None:
    applied = run_installed(installed, tmp_path, "features", "apply")
    assert applied.returncode == 0, applied.stderr[-3000:]
    assert "feature definitions applied" in applied.stdout
    start = (transactions["tx_datetime"].min().date() + timedelta(days=14)).isoformat()
    evaluated = run_installed(installed, Path("/"), "evaluate", "--train-start", start, "--json")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert 0.5 < json.loads(evaluated.stdout)["auc_roc"] <= 1.0


@pytest.mark.parametrize("folder", [FEATURE_REPO_DIR, REPO_ROOT.parent], ids=["feature_repo", "parent"])
def test_features_apply_works_from_any_folder_of_a_checkout(folder: Path, feature_store) -> None:
    applied = subprocess.run([FRAUD, "features", "apply"], cwd=folder, capture_output=True, text=True, timeout=300)
    assert applied.returncode == 0, applied.stderr[-3000:]
    assert "feature definitions applied" in applied.stdout
