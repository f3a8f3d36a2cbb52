"""What every command shares: the consoles, the one-sentence failure, reading and writing frames."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console

from contracts.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

FRAME_SUFFIXES = (".csv", ".parquet", ".pq")

# Wide enough for the demo's table when output is not a terminal (CI logs, pipes). Sentences
# are never broken at the console's width (soft wrap): the terminal wraps them, a pipe keeps
# each on one line.
console = Console(width=None if Console().is_terminal else 140, soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Stop with one sentence saying what to fix, and a non-zero exit."""
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def write_frame(frame: pd.DataFrame, out: Path) -> None:
    """Write a frame as parquet or CSV, by the file name's suffix."""
    check_frame_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        frame.to_csv(out, index=False)
    else:
        frame.to_parquet(out, index=False)


def check_frame_path(out: Path) -> None:
    """Fail before any work when a frame could not be written under this name."""
    if out.suffix not in FRAME_SUFFIXES:
        fail(f"cannot write {out.name}: use a .parquet or .csv file name")


def load_raw(settings: Settings) -> pd.DataFrame:
    """Every ingested transaction, or a failure saying to ingest first."""
    from data.raw_store import RawStore, RawStoreEmpty

    try:
        return RawStore(settings).load()
    except RawStoreEmpty as error:
        fail(str(error))
