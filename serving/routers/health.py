"""GET /health: is the scorer able to answer, and is its online store reachable."""

from fastapi import APIRouter

from serving.deps import ScorerDep
from serving.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health(scorer: ScorerDep) -> Health:
    reachable = scorer.online_store_reachable()
    registry = scorer.models.status
    return Health(
        status="ok" if reachable and registry.reachable else "degraded",
        model_version=scorer.model.version,
        online_store="ok" if reachable else "unreachable",
        model_registry="ok" if registry.reachable else "unreachable",
        registry_checked_at=registry.checked_at,
        registry_error=registry.error,
    )
