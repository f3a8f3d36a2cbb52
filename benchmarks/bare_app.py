"""The framework's ceiling for the serving benchmark (`benchmarks/serving/`): FastAPI with nothing behind it.

`POST /score` validates the body with the platform's own pydantic `Transaction` model
(the scorer's request model, so the same 422 rules) and answers a constant of the same
shape as the scorer's answer; `POST /score/batch` does the same for up to 1,000
transactions. No feature store, no model, no Redis: whatever the scorer spends above
this is its own work. The routes are `async def`, so no thread-pool hop either: the
ceiling, not a peer. Run it as the benchmark does:

    .venv/bin/python -m uvicorn benchmarks.bare_app:app --port 8002 --workers 1 \
        --no-access-log --log-level warning
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from serving.schemas import Transaction

MAX_BATCH = 1000

app = FastAPI(title="Bare FastAPI ceiling", version="1")

_ANSWER = {
    "risk_score": 0.0,
    "decision": "approve",
    "reasons": [],
    "model_name": "constant",
    "model_version": "0",
    "feature_service": "none",
    "missing_features": [],
}


class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transactions: Annotated[list[Transaction], Field(min_length=1, max_length=MAX_BATCH)]


@app.post("/score")
async def score(transaction: Transaction) -> dict:
    return {"transaction_id": transaction.transaction_id, **_ANSWER}


@app.post("/score/batch")
async def score_batch(batch: Batch) -> dict:
    return {"results": [{"transaction_id": tx.transaction_id, **_ANSWER} for tx in batch.transactions]}


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}
