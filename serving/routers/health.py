"""GET /health: is the scorer able to answer, and is its online store reachable."""

from fastapi import APIRouter

from serving.deps import ScorerDep
from serving.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health(scorer: ScorerDep) -> Health:
    reachable = scorer.online_store_reachable()
    registry = scorer.models.status
    dropping = scorer.events.dropping()
    return Health(
        # Degraded: something the scorer should have (its store, the registry, the champion,
        # the event stream) it does not, while it goes on answering with what it has.
        status="ok" if reachable and registry.error is None and not dropping else "degraded",
        model_version=scorer.model.version,
        online_store="ok" if reachable else "unreachable",
        model_registry="ok" if registry.reachable else "unreachable",
        registry_checked_at=registry.checked_at,
        registry_error=registry.error,
        champion_refused=registry.refused_version,
        event_publisher="dropping" if dropping else "ok",
        events_dropped=scorer.events.dropped,
    )
