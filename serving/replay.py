"""Replaying a day of recorded payments through the scorer as it happened.

Customer features count the customer's earlier payments, which reach the online store
when `fraud worker` folds them into the customer's state. Scoring a whole day in one
call would score every payment without its same-day predecessors. A replay instead goes
in waves: wave k holds every customer's k-th payment, and the next wave is scored only
once the worker has consumed the previous one. Used by `fraud demo` and the monitoring tests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pandas as pd

from contracts.tables import request_body
from serving.schemas import MAX_BATCH
from serving.worker import Worker


def payment_bodies(payments: pd.DataFrame, id_prefix: str = "") -> list[dict]:
    """POST /score bodies of raw-contract rows, in payment-time order (ids as text, with the prefix)."""
    bodies = []
    for row in payments.sort_values("tx_datetime", kind="stable").to_dict("records"):
        body = request_body(row)
        body["transaction_id"] = f"{id_prefix}{body['transaction_id']}"
        bodies.append(body)
    return bodies


def waves(bodies: list[dict]) -> list[list[dict]]:
    """Bodies (in time order) grouped so that wave k holds every customer's k-th payment."""
    seen: dict[int, int] = {}
    grouped: list[list[dict]] = []
    for body in bodies:
        rank = seen.get(body["customer_id"], 0)
        seen[body["customer_id"]] = rank + 1
        if rank == len(grouped):
            grouped.append([])
        grouped[rank].append(body)
    return grouped


def consume(worker: Worker, count: int, timeout_s: float = 60) -> None:
    """Run the worker until it has processed `count` events (the scorer publishes just after answering)."""
    deadline = time.monotonic() + timeout_s
    done = 0
    while done < count:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the worker processed {done} of {count} scoring events in {timeout_s:.0f} s; "
                "is the scorer publishing to the worker's stream?"
            )
        done += worker.run(once=True)
        time.sleep(0.01)


def replay(http: httpx.Client, worker: Worker, bodies: list[dict]) -> Iterator[dict]:
    """Score the bodies wave by wave through POST /score/batch; yields each answer."""
    for wave in waves(bodies):
        for start in range(0, len(wave), MAX_BATCH):
            chunk = wave[start : start + MAX_BATCH]
            response = http.post("/score/batch", json={"transactions": chunk})
            response.raise_for_status()
            yield from response.json()["results"]
            consume(worker, len(chunk))
