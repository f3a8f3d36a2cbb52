"""POST /score: one payment in, a risk score, decision and reasons out."""

from fastapi import APIRouter, BackgroundTasks

from serving.deps import ScorerDep
from serving.schemas import ScoreResponse, Transaction

router = APIRouter(tags=["scoring"])


@router.post("/score", response_model=ScoreResponse)
def score(transaction: Transaction, scorer: ScorerDep, background: BackgroundTasks) -> ScoreResponse:
    scored = scorer.score(transaction)
    # The state push and the event run after the answer is sent, off the request path.
    background.add_task(scorer.record, scored)
    return scored.response
