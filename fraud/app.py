"""`fraud`: the platform's one command-line entry point, assembled from one module per noun."""

from __future__ import annotations

import logging
import os
import warnings
from typing import Annotated

import typer

from contracts.settings import Settings
from fraud import data, demo, features, model, monitor, serve

app = typer.Typer(
    help="Fraud detection platform built around a feature store.", no_args_is_help=True, pretty_exceptions_enable=False
)
for commands in (data.app, model.app, monitor.app, serve.app, demo.app):
    app.add_typer(commands)  # top-level commands: simulate, ingest, train, evaluate, skew-check, serve, ...
app.add_typer(features.app, name="features")
app.add_typer(model.registry_app, name="model")
app.add_typer(monitor.monitor_app, name="monitor")


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not verbose:
        quiet_third_party_warnings()
        # MLflow draws a progress bar for every artifact download (a reference profile is one file).
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


# Notices the libraries we call print on every run; none is the user's to act on. Each is
# named by category, message and module, so any other warning still shows.
THIRD_PARTY_NOTICES: tuple[tuple[type[Warning], str, str], ...] = (
    # Feast, on every offline retrieval through an on-demand view.
    (RuntimeWarning, "On demand feature view is an experimental feature", "feast"),
    # MLflow, logging the training set as a dataset input and the model's signature.
    (UserWarning, "The specified dataset source can be interpreted in multiple ways", "mlflow"),
    (UserWarning, "Hint: Inferred schema contains integer column", "mlflow"),
    # Deprecations inside MLflow's SQL store and ibis' DuckDB backend, not in our calls.
    (DeprecationWarning, "The ``noload`` loader strategy is deprecated", "mlflow"),
    (DeprecationWarning, r"fetch_arrow_table\(\) is deprecated", "ibis"),
)


def quiet_third_party_warnings() -> None:
    """Hide the known third-party notices above (`--verbose` shows them)."""
    for category, message, module in THIRD_PARTY_NOTICES:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


@app.command()
def env() -> None:
    """Print the environment Feast's CLI needs: eval "$(fraud env)" before `feast apply`."""
    for key, value in Settings().feast_variables().items():
        typer.echo(f"export {key}='{value}'")
