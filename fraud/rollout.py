"""`fraud rollout start | share | stop | status`: a challenger beside the champion, in shadow or canary."""

from __future__ import annotations

from typing import Annotated

import typer

from contracts.settings import Settings
from fraud.console import console, fail
from fraud.model import _lifecycle_errors

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
def rollout_status() -> None:
    """The rollout in force: version, mode, share, since when and by whom; or "no rollout"."""
    from training.lifecycle import rollout_plan

    settings = Settings()
    local = settings.local_registry_file
    if local is not None and not local.exists():
        fail(f"no registry at {local}: train a model first (`fraud train`), or point MLFLOW_TRACKING_URI at one")
    with _lifecycle_errors():
        plan = rollout_plan(settings)
    if plan is None:
        console.print("no rollout")
        return
    console.print(
        f"challenger v{plan.version}: {plan.mode}, share {plan.share:g}, since {plan.started_at} by {plan.started_by}"
    )
