"""`fraud`: the platform's one command-line entry point, assembled from one module per noun."""

from __future__ import annotations

import logging
import os
import re
import shlex
import warnings
from pathlib import Path
from typing import Annotated, TextIO

import typer

from contracts.settings import Settings
from contracts.tracing import configure_tracing, step
from fraud import bootstrap, data, demo, features, model, monitor, rollout, serve

app = typer.Typer(
    help="Fraud detection platform built around a feature store.", no_args_is_help=True, pretty_exceptions_enable=False
)
for commands in (data.app, model.app, monitor.app, serve.app, demo.app, bootstrap.app):
    app.add_typer(commands)  # top-level commands: simulate, ingest, train, evaluate, skew-check, serve, ...
app.add_typer(features.app, name="features")
app.add_typer(model.registry_app, name="model")
app.add_typer(monitor.monitor_app, name="monitor")
app.add_typer(rollout.app, name="rollout")


# Long-running commands trace their units of work (a request, a batch), not their whole life.
UNTRACED_COMMANDS = frozenset({"serve", "worker", "worker-health"})
CLI_SERVICE = "fraud-cli"  # for traces, unless OTEL_SERVICE_NAME says otherwise


@app.callback()
def main(
    ctx: typer.Context, verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not verbose:
        quiet_third_party_warnings()
        # MLflow draws a progress bar for every artifact download (a reference profile is one file).
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # With the OTEL_* variables set, a command is one trace: its root span, its steps' spans below.
    if ctx.invoked_subcommand not in UNTRACED_COMMANDS and configure_tracing(CLI_SERVICE):
        ctx.with_resource(step(f"fraud {ctx.invoked_subcommand}"))


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
    """Hide the known third-party notices above (`--verbose` shows them).

    They are dropped where warnings are shown rather than by a filter: Feast's modules call
    `warnings.simplefilter("once", ...)` as they are imported, which puts their filter ahead
    of any installed earlier, and Feast is imported late, by the commands that need it.
    """
    show = warnings.showwarning

    def show_unless_known(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if not is_known_notice(str(message), category, filename):
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = show_unless_known


def is_known_notice(message: str, category: type[Warning], filename: str) -> bool:
    """Whether a warning is one of THIRD_PARTY_NOTICES: its category, message and package."""
    path = Path(filename).parts
    return any(
        issubclass(category, known) and re.match(pattern, message) and package in path
        for known, pattern, package in THIRD_PARTY_NOTICES
    )


@app.command()
def env() -> None:
    """Print this deployment's environment: eval "$(fraud env)" before `feast apply`, `mlflow ui`, ..."""
    for key, value in Settings().environment().items():
        typer.echo(f"export {key}={shlex.quote(value)}")
