"""POST /score: one transaction in, a risk score, decision and reasons out."""

from fastapi import APIRouter

from serving.deps import ScorerDep
from serving.schemas import ScoreResponse, Transaction

router = APIRouter(tags=["scoring"])


@router.post("/score", response_model=ScoreResponse)
def score(transaction: Transaction, scorer: ScorerDep) -> ScoreResponse:
    return scorer.score(transaction)
