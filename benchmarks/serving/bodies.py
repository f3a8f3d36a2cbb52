"""Request bodies: the same held-back payments as each server's request, one JSON body per line for wrk.

ours and bare take the scorer's `POST /score` body; Feast's feature server takes the
entity and request fields `feature_repo.transforms.entity_row` builds for the same
payments, for the feature service (or, as a fallback, its stored views).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.support.errors import SetupError
from contracts.settings import REPO_ROOT
from contracts.tables import request_body
from feature_repo.transforms import entity_row

FEATURE_SERVICE = "fraud_detection_v1"

# A row of `DataFrame.itertuples(index=False)` over the raw contract's columns (a namedtuple
# pandas builds at run time, so no static type says more).
Row = Any


@dataclass(frozen=True)
class Payload:
    """What a server is sent: wrk's body file, the first request's body, one batch call's body."""

    bodies: Path
    check_body: dict[str, Any]
    batch: bytes


# Feast's fallback: (status, text of the failed answer) -> the stored-views payload, and a note why.
Fallback = Callable[[int, str], tuple[Payload, str]]


def score_body(tx: Row) -> dict[str, Any]:
    """The scorer's `POST /score` body of a payment, its id as text (the scorer's ids are strings here)."""
    body = request_body(tx._asdict())
    body["transaction_id"] = str(body["transaction_id"])
    return body


def score_batch(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """`POST /score/batch` transactions; ids made distinct when the live day had to be cycled through."""
    bodies = [score_body(tx) for tx in rows]
    if len({body["transaction_id"] for body in bodies}) < len(bodies):
        for i, body in enumerate(bodies):
            body["transaction_id"] = f"{body['transaction_id']}-{i}"
    return bodies


def feast_entities(rows: Sequence[Row]) -> dict[str, list[Any]]:
    """Feast's columnar `entities` for payments, built by the platform's own `entity_row`."""
    columns: dict[str, list[Any]] = {}
    for tx in rows:
        device = getattr(tx, "device_id", None)
        entity = entity_row(
            tx.customer_id, tx.terminal_id, device if isinstance(device, str) else None, tx.tx_datetime, tx.tx_amount
        )
        for key, value in entity.items():
            columns.setdefault(key, []).append(value)
    return columns


def feast_body(rows: Sequence[Row], features: list[str] | None) -> dict[str, Any]:
    """`POST /get-online-features` for payments: the feature service, or the given `view:feature` refs."""
    body: dict[str, Any] = {"entities": feast_entities(rows)}
    if features:
        body["features"] = features
    else:
        body["feature_service"] = FEATURE_SERVICE
    return body


def write_lines(path: Path, bodies: list[dict[str, Any]]) -> Path:
    """The bodies as compact JSON, one per line: the file benchmarks/wrk/post_bodies.lua reads."""
    path.write_text("".join(json.dumps(body, separators=(",", ":")) + "\n" for body in bodies))
    return path


def payloads(workdir: Path, sample: Sequence[Row], batch_rows: Sequence[Row]) -> dict[str, Payload]:
    """Each server's payload for the same payments: `sample` for wrk, `batch_rows` for a batch call."""
    score_bodies = [score_body(tx) for tx in sample]
    score_file = write_lines(workdir / "score.jsonl", score_bodies)
    batch = json.dumps({"transactions": score_batch(batch_rows)}).encode()
    feast_bodies = [feast_body([tx], None) for tx in sample]
    return {
        "ours": Payload(score_file, score_bodies[0], batch),
        "bare": Payload(score_file, score_bodies[0], batch),
        "feast": Payload(
            write_lines(workdir / "feast.jsonl", feast_bodies),
            feast_bodies[0],
            json.dumps(feast_body(batch_rows, None)).encode(),
        ),
    }


def stored_feature_refs(env: dict[str, str]) -> list[str]:
    """`view:feature` of the service's stored views only (the fallback when on-demand views fail).

    Asked of the feature registry in a subprocess, with Feast's environment, so that this
    process never loads Feast.
    """
    code = (
        "import json\n"
        "from contracts.settings import Settings\n"
        "from feature_repo.store import feature_store\n"
        "store = feature_store(Settings())\n"
        f"service = store.get_feature_service({FEATURE_SERVICE!r})\n"
        "stored = {v.name for v in store.list_feature_views()}\n"
        "print(json.dumps([f'{p.name}:{f.name}' for p in service.feature_view_projections\n"
        "                  if p.name in stored for f in p.features]))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise SetupError(f"could not list the stored views of {FEATURE_SERVICE}:\n{completed.stderr[-2000:]}")
    return list(json.loads(completed.stdout.strip().splitlines()[-1]))


def feast_fallback(fenv: dict[str, str], workdir: Path, sample: Sequence[Row], batch_rows: Sequence[Row]) -> Fallback:
    """When Feast's server fails the feature service: its stored views instead, and a note why."""

    def fallback(status: int, text: str) -> tuple[Payload, str]:
        refs = stored_feature_refs(fenv)
        bodies = write_lines(workdir / "feast-stored.jsonl", [feast_body([tx], refs) for tx in sample])
        note = (
            f"the feature service {FEATURE_SERVICE} failed in Feast's server ({status}: {text[:200]}); "
            f"benchmarked its stored views only ({len(refs)} features)"
        )
        payload = Payload(bodies, feast_body(sample[:1], refs), json.dumps(feast_body(batch_rows, refs)).encode())
        return payload, note

    return fallback
