"""The layers hold: imports run one way (checked by `make lint`), and the scorer loads only what it serves with."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("contracts", "data", "feature_repo", "training", "serving", "monitoring", "fraud")
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")

# Loads the scorer as `fraud serve` does (the app and its start-up: registry, model, feature store)
# and prints the modules it brought in that a scorer must not need.
SCORER_IMPORTS = """
import asyncio, json, sys
import xgboost  # XGBoost itself imports part of scikit-learn: that part is not the scorer's doing
baseline = {m for m in sys.modules if m.split(".")[0] == "sklearn"}
from serving.app import create_app

async def start_and_stop(app):
    async with app.router.lifespan_context(app):
        assert app.state.scorer.model.version

app = create_app()
asyncio.run(start_and_stop(app))
forbidden = ("training", "monitoring", "fraud", "matplotlib", "evidently")
print(json.dumps(sorted(m for m in sys.modules
                        if m.split(".")[0] in forbidden or (m.split(".")[0] == "sklearn" and m not in baseline))))
"""


def test_the_running_scorer_loads_no_training_monitoring_matplotlib_sklearn_or_evidently(
    trained_model, online_until
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCORER_IMPORTS],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def run_import_linter(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT_IMPORTS, "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packages and the import contract, copied where a test may break them."""
    root = tmp_path_factory.mktemp("layers")
    shutil.copy(REPO / "pyproject.toml", root)
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_the_import_contract_holds_on_the_code_as_it_is(repo_copy: Path) -> None:
    result = run_import_linter(repo_copy)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "upward"),
    [
        ("serving/scoring.py", "import training.models"),  # serving -> training: siblings
        ("contracts/settings.py", "import data.contract"),  # the bottom layer importing one above it
        ("feature_repo/transforms.py", "from monitoring import checks"),
    ],
)
def test_an_upward_import_breaks_the_contract(repo_copy: Path, module: str, upward: str) -> None:
    path = repo_copy / module
    original = path.read_text()
    path.write_text(original + f"\n{upward}  # a deliberate upward import\n")
    try:
        result = run_import_linter(repo_copy)
    finally:
        path.write_text(original)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout or "broken" in result.stdout
    importer = module.removesuffix(".py").replace("/", ".")
    assert importer in result.stdout, result.stdout[-3000:]
