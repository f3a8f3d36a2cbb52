"""`fraud simulate` and `fraud ingest`: data in the raw contract, checked before anything uses it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from contracts.settings import Settings
from contracts.tracing import step
from fraud.console import check_frame_path, console, err, fail, write_frame

app = typer.Typer()


@app.command()
def simulate(
    out: Annotated[Path | None, typer.Option(help="Parquet or CSV file to write.")] = None,
    preset: Annotated[str | None, typer.Option(help="'handbook': the book's size and dates.")] = None,
    customers: Annotated[int, typer.Option(min=1)] = 1000,
    terminals: Annotated[int, typer.Option(min=1)] = 2000,
    days: Annotated[int, typer.Option(min=1)] = 61,
    start_date: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Default: the data ends yesterday.")
    ] = None,
    seed: int = 0,
    devices: Annotated[bool, typer.Option(help="Include device columns.")] = True,
) -> None:
    """Simulate transactions in the raw contract (Handbook simulator plus devices and takeovers)."""
    from data.simulate import SimulationConfig, simulate_transactions

    if preset not in (None, "handbook"):
        fail(f"unknown preset {preset!r}; the only preset is 'handbook'")
    out = out or Settings().incoming_dir / "transactions.parquet"
    check_frame_path(out)
    config = (
        SimulationConfig.handbook()
        if preset == "handbook"
        else SimulationConfig(
            n_customers=customers,
            n_terminals=terminals,
            n_days=days,
            start_date=start_date.date() if start_date else None,
            seed=seed,
        )
    )
    if not devices:
        config = SimulationConfig(**{**config.__dict__, "with_devices": False})
    with console.status("simulating transactions"):
        frame = simulate_transactions(config)
    write_frame(frame, out)
    console.print(f"wrote {len(frame):,} transactions ({int(frame['is_fraud'].sum()):,} frauds) to {out}")


@app.command()
def ingest(path: Annotated[Path, typer.Argument(help="Transactions file, parquet or CSV.")]) -> None:
    """Check a raw transactions file against the contract and store it, or reject it whole."""
    from data.contract import ContractError, InputFileError
    from data.raw_store import RawStore

    try:
        with step("data.ingest", {"fraud.file": path.name}):
            result = RawStore(Settings()).ingest_file(path)
    except InputFileError as error:
        fail(str(error))
    except ContractError as error:
        err.print(str(error))
        fail(f"{path} was rejected and nothing was stored; fix the rows above and ingest it again")
    console.print(f"stored {result.rows:,} transactions from {result.start} to {result.end} in {result.path}")
