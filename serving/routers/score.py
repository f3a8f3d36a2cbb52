"""POST /score (one payment) and POST /score/batch (up to 1,000): risk, decision, reasons.

With tracing on, FastAPI's request span (a child of the caller's `traceparent`) holds a span
per step of the scorer; the answer's X-Trace-Id header names the trace. Off, the header
echoes the trace id of a caller's valid `traceparent`, and is absent without one.
"""

from fastapi import APIRouter, Request
from fastapi.responses import Response
from opentelemetry.util.types import AttributeValue

from contracts.tracing import TRACE_ID_HEADER
from serving.deps import MetricsDep, ScorerDep
from serving.schemas import BatchScoreRequest, BatchScoreResponse, ScoreResponse, Transaction

router = APIRouter(tags=["scoring"])
_SCORE_SPAN: dict[str, AttributeValue] = {"fraud.transactions": 1}


def _json(model: ScoreResponse | BatchScoreResponse, trace_id: str | None) -> Response:
    # pydantic serialises (in Rust); FastAPI's generic encoder would walk the model again.
    headers = {TRACE_ID_HEADER: trace_id} if trace_id else None
    return Response(content=model.model_dump_json(), media_type="application/json", headers=headers)


@router.post("/score", response_model=ScoreResponse)
async def score(transaction: Transaction, scorer: ScorerDep, metrics: MetricsDep, request: Request) -> Response:
    trace_id = scorer.spans.request_trace_id(request.headers, _SCORE_SPAN)
    answers = await scorer.score([transaction], trace_id)
    metrics.record_scores(answers)
    return _json(answers[0], trace_id)


@router.post("/score/batch", response_model=BatchScoreResponse)
async def score_batch(batch: BatchScoreRequest, scorer: ScorerDep, metrics: MetricsDep, request: Request) -> Response:
    trace_id = scorer.spans.request_trace_id(request.headers, {"fraud.transactions": len(batch.transactions)})
    answers = await scorer.score(batch.transactions, trace_id)
    metrics.record_scores(answers)
    return _json(BatchScoreResponse(results=answers), trace_id)
