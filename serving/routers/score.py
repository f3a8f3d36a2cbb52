"""POST /score (one payment) and POST /score/batch (up to 1,000): risk, decision, reasons."""

from fastapi import APIRouter
from fastapi.responses import Response

from serving.deps import MetricsDep, ScorerDep
from serving.schemas import BatchScoreRequest, BatchScoreResponse, ScoreResponse, Transaction

router = APIRouter(tags=["scoring"])


def _json(model: ScoreResponse | BatchScoreResponse) -> Response:
    # pydantic serialises (in Rust); FastAPI's generic encoder would walk the model again.
    return Response(content=model.model_dump_json(), media_type="application/json")


@router.post("/score", response_model=ScoreResponse)
async def score(transaction: Transaction, scorer: ScorerDep, metrics: MetricsDep) -> Response:
    answers = await scorer.score([transaction])
    metrics.record_scores(answers)
    return _json(answers[0])


@router.post("/score/batch", response_model=BatchScoreResponse)
async def score_batch(batch: BatchScoreRequest, scorer: ScorerDep, metrics: MetricsDep) -> Response:
    answers = await scorer.score(batch.transactions)
    metrics.record_scores(answers)
    return _json(BatchScoreResponse(results=answers))
