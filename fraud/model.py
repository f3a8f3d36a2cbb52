"""`fraud train`, `fraud evaluate` and `fraud model list | approve | promote | rollback | audit`."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from contracts.settings import Settings
from fraud.console import console, fail, load_raw

if TYPE_CHECKING:
    from training.validate import GateCheck

app = typer.Typer()  # train, evaluate: top-level commands
registry_app = typer.Typer(help="The model registry: list, approve, promote, roll back, audit.", no_args_is_help=True)
MODELS = ("xgboost", "logistic", "random_forest")


@app.command()
def train() -> None:
    """Train a candidate from the feature store, gate it, and register it in MLflow.

    Registering does not deploy: approve the version, then promote it (`fraud model`).
    """
    from contracts.registry import RegistryUnavailable
    from feature_repo.store import DefinitionsNotApplied, feature_store, limit_offline_memory
    from training.train import train_candidate
    from training.validate import GateFailed

    settings = Settings()
    limit_offline_memory(settings)
    transactions = load_raw(settings)
    try:
        with console.status("training a candidate"):
            result = train_candidate(settings, feature_store(settings), transactions)
    except GateFailed as error:
        _print_checks(error.checks)
        fail(str(error))
    except (ValueError, RegistryUnavailable, DefinitionsNotApplied) as error:
        fail(str(error))
    _print_checks(result.checks)
    console.print(
        f"registered {result.model_name} version {result.version} "
        f"(train {result.n_train:,}, holdout {result.n_test:,}); evaluation report {result.report}. Next: "
        f"fraud model approve {result.version} --by NAME --note TEXT; "
        f"fraud model promote {result.version} --by NAME"
    )


def _print_checks(checks: Sequence[GateCheck]) -> None:
    table = Table(title="Validation gate")
    for column in ("check", "result", "detail"):
        table.add_column(column)
    for check in checks:
        table.add_row(check.name, "[green]pass[/green]" if check.passed else "[red]FAIL[/red]", check.message)
    console.print(table)


@app.command()
def evaluate(
    protocol: Annotated[str, typer.Option(help="Evaluation protocol: 'handbook'.")] = "handbook",
    train_start: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="First training day.")] = ...,  # type: ignore[assignment]
    model: Annotated[str, typer.Option(help="xgboost, logistic or random_forest.")] = "xgboost",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Evaluate a model by the Handbook protocol, every feature through the feature store."""
    import pandas as pd

    from feature_repo.pipeline import build_offline_tables
    from feature_repo.store import apply_definitions, feature_store, limit_offline_memory
    from training.evaluate import evaluate_handbook

    if protocol != "handbook":
        fail(f"unknown protocol {protocol!r}; the only protocol is 'handbook'")
    if model not in MODELS:
        fail(f"unknown model {model!r}; choose xgboost, logistic or random_forest")
    settings = Settings()
    limit_offline_memory(settings)
    transactions = load_raw(settings)
    try:
        build_offline_tables(settings, transactions)
        store = feature_store(settings)
        apply_definitions(store, settings)
        result = evaluate_handbook(settings, store, transactions, pd.Timestamp(train_start), model)  # type: ignore[arg-type]
    except ValueError as error:
        fail(str(error))
    if as_json:
        typer.echo(json.dumps(result))
    else:
        for key, value in result.items():
            console.print(f"{key:>24}  {value}")


@registry_app.command("list")
def model_list() -> None:
    """Versions with their approval, aliases and holdout metrics."""
    from training.lifecycle import list_versions

    settings = Settings()
    local = settings.local_registry_file
    if local is not None and not local.exists():
        fail(f"no registry at {local}: train a model first (`fraud train`), or point MLFLOW_TRACKING_URI at one")
    versions = list_versions(settings)
    if not versions:
        fail(f"no version of {settings.model_name} in the registry at {settings.registry_location}: train one first")
    table = Table(title=f"Model versions of {settings.model_name} in {settings.registry_location}")
    for column in ("version", "aliases", "approved by", "approved at", "AUC", "AP", "CP@100", "trained on", "created"):
        table.add_column(column)
    for v in versions:
        metrics = [
            f"{v.metrics[name]:.3f}" if name in v.metrics else "-"
            for name in ("auc_roc", "average_precision", "card_precision_at_100")
        ]
        table.add_row(
            v.version,
            ", ".join(v.aliases) or "-",
            v.approved_by or "[yellow]not approved[/yellow]",
            v.approved_at or "-",
            *metrics,
            f"{(v.data_start or '-')[:10]} .. {(v.data_end or '-')[:10]}",
            v.created_at[:19],
        )
    console.print(table)


@contextlib.contextmanager
def _lifecycle_errors() -> Iterator[None]:
    """A refused registry move (not approved, no previous champion, ...) or a failing registry ends
    the command with its reason."""
    from contracts.registry import RegistryUnavailable
    from training.lifecycle import LifecycleError

    try:
        yield
    except (LifecycleError, RegistryUnavailable) as error:
        fail(str(error))


@registry_app.command("approve")
def model_approve(
    version: str,
    by: Annotated[str, typer.Option(help="Who approves.")],
    note: Annotated[str, typer.Option(help="Why: what was checked.")],
) -> None:
    """Record who approved a version, when and why; only approved versions can be promoted."""
    from training.lifecycle import approve

    with _lifecycle_errors():
        approved = approve(Settings(), version, by, note)
    console.print(f"version {approved.version} approved by {by}")


@registry_app.command("promote")
def model_promote(
    version: str,
    by: Annotated[str, typer.Option(help="Who deploys.")],
    reason: Annotated[str, typer.Option(help="Why.")] = "",
) -> None:
    """Point `champion` at an approved version (running scorers follow within seconds)."""
    from training.lifecycle import promote

    with _lifecycle_errors():
        move = promote(Settings(), version, by, reason)
    console.print(f"champion: v{move.from_version or '-'} -> v{move.to_version} ({move.by}, {move.at})")


@registry_app.command("rollback")
def model_rollback(
    by: Annotated[str, typer.Option(help="Who rolls back.")], reason: Annotated[str, typer.Option(help="Why.")] = ""
) -> None:
    """Move `champion` back to the previous approved champion."""
    from training.lifecycle import rollback

    with _lifecycle_errors():
        move = rollback(Settings(), by, reason)
    console.print(f"champion rolled back: v{move.from_version} -> v{move.to_version} ({move.by}, {move.at})")


@registry_app.command("audit")
def model_audit() -> None:
    """Every move of the champion alias and of the rollout's challenger: who, when, from, to, why."""
    from training.lifecycle import audit_trail

    table = Table(title="Champion and challenger moves")
    for column in ("when", "kind", "by", "from", "to", "plan", "why"):
        table.add_column(column)
    for move in audit_trail(Settings()):
        table.add_row(
            move.at,
            move.kind,
            move.by,
            f"v{move.from_version}" if move.from_version else "-",
            f"v{move.to_version}" if move.to_version else "-",
            f"{move.mode}, share {move.share:g}" if move.mode and move.share is not None else "-",
            move.reason,
        )
    console.print(table)
