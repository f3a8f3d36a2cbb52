"""`fraud rollout start | share | stop | status | watch`: a challenger beside the champion, in shadow or canary."""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from contracts.settings import Settings
from fraud.console import console, err, fail
from fraud.model import _lifecycle_errors

if TYPE_CHECKING:
    from monitoring.rollout import IntervalVerdict

app = typer.Typer(
    help="Safe rollout: an approved challenger meets a share of traffic, in shadow or canary.", no_args_is_help=True
)


@app.command("start")
def rollout_start(
    version: str,
    mode: Annotated[str, typer.Option(help="shadow: scored beside the champion, never answers; canary: answers.")],
    share: Annotated[float, typer.Option(help="Share of payments (shadow) or customers (canary), 0 to 1.")],
    by: Annotated[str, typer.Option(help="Who starts the rollout.")],
    reason: Annotated[str, typer.Option(help="Why.")] = "",
) -> None:
    """Make an approved version, other than the champion, the challenger."""
    from training.lifecycle import start_rollout

    with _lifecycle_errors():
        move = start_rollout(Settings(), version, mode, share, by, reason)
    console.print(f"challenger: v{move.to_version}, {move.mode}, share {move.share:g} ({move.by}, {move.at})")


@app.command("share")
def rollout_share(
    share: Annotated[float, typer.Argument(help="The new share, 0 to 1.")],
    by: Annotated[str, typer.Option(help="Who changes it.")],
    reason: Annotated[str, typer.Option(help="Why.")] = "",
) -> None:
    """Change the share of traffic the challenger meets."""
    from training.lifecycle import set_rollout_share

    with _lifecycle_errors():
        move = set_rollout_share(Settings(), share, by, reason)
    console.print(f"challenger v{move.to_version}: {move.mode}, share {move.share:g} ({move.by}, {move.at})")


@app.command("stop")
def rollout_stop(
    by: Annotated[str, typer.Option(help="Who stops the rollout.")],
    reason: Annotated[str, typer.Option(help="Why.")] = "",
) -> None:
    """Remove the challenger: the champion answers and is scored alone again."""
    from training.lifecycle import stop_rollout

    with _lifecycle_errors():
        move = stop_rollout(Settings(), by, reason)
    console.print(f"rollout of v{move.from_version} stopped ({move.by}, {move.at})")


@app.command("status")
def rollout_status(
    last: Annotated[int, typer.Option(min=1, help="How many of the latest interval verdicts to show.")] = 5,
) -> None:
    """The rollout in force (version, mode, share, since when and by whom, or "no rollout"), and
    the latest verdicts the watcher kept: this rollout's, or the last rollout's or bake period's."""
    from monitoring.rollout_watch import kept_verdicts, latest_folder, rollout_folder
    from training.lifecycle import rollout_plan

    settings = _settings_with_registry()
    with _lifecycle_errors():
        plan = rollout_plan(settings)
    if plan is None:
        console.print("no rollout")
        folder = latest_folder(settings)
    else:
        since = f"since {plan.started_at} by {plan.started_by}"
        console.print(f"challenger v{plan.version}: {plan.mode}, share {plan.share:g}, {since}")
        folder = rollout_folder(settings, plan)
    verdicts = kept_verdicts(folder) if folder is not None else []
    if not verdicts:
        if plan is not None:
            console.print("no interval verdict kept yet (`fraud rollout watch` keeps one per interval)")
        return
    console.print(_verdict_table(f"Latest verdicts ({folder.name if folder else ''})", verdicts[-last:]))


@app.command("watch")
def rollout_watch(
    interval: Annotated[
        float | None, typer.Option(min=1.0, help="Seconds between steps. Default: FRAUD_ROLLOUT_WATCH_SECONDS.")
    ] = None,
    once: Annotated[bool, typer.Option(help="One step, then exit.")] = False,
    heartbeat: Annotated[
        Path | None, typer.Option(help="A file touched before each step (a container's health check reads it).")
    ] = None,
) -> None:
    """Judge the rollout and the bake period every interval; stop, promote or roll back as the
    settings say. One line per watched stage and interval; runs until SIGTERM (or Ctrl-C)."""
    import redis

    from contracts.registry import RegistryUnavailable
    from monitoring.rollout_watch import watch_once

    settings = _settings_with_registry()
    period = interval if interval is not None else settings.rollout_watch_seconds
    stopping = threading.Event()
    if not once:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())
    while not stopping.is_set():
        if heartbeat is not None:
            heartbeat.touch()
        try:
            step = watch_once(settings, datetime.now(UTC))
        except (RegistryUnavailable, redis.RedisError) as error:
            if once:
                fail(str(error))
            err.print(f"[red]error:[/red] {error}; trying again in {period:g} s")
        else:
            for line in step.lines():
                console.print(line, markup=False, highlight=False)
        if once:
            return
        stopping.wait(period)


def _settings_with_registry() -> Settings:
    """The settings, once a local registry is known to exist (MLflow would create an empty one)."""
    settings = Settings()
    local = settings.local_registry_file
    if local is not None and not local.exists():
        fail(f"no registry at {local}: train a model first (`fraud train`), or point MLFLOW_TRACKING_URI at one")
    return settings


def _verdict_table(title: str, verdicts: list[IntervalVerdict]) -> Table:
    """Interval, rows per version, each check's value against its threshold, and the verdict."""
    table = Table(title=title)
    for column in ("interval (UTC)", "rows", "checks (value / threshold)", "verdict"):
        table.add_column(column)
    for verdict in verdicts:
        checks = "\n".join(
            f"{'ok  ' if check.passed else 'FAIL'} {check.name} {check.value:.4g} / {check.threshold:.4g}"
            for check in verdict.checks
        )
        rows = ", ".join(f"v{figures.version} {figures.rows}" for figures in (verdict.champion, verdict.challenger))
        style = {"breach": "red", "healthy": "green"}.get(verdict.verdict)
        table.add_row(f"{verdict.start[:19]} .. {verdict.end[:19]}", rows, checks or "-", verdict.verdict, style=style)
    return table
