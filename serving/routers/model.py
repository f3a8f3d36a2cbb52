"""GET /model: which model version is serving and where it came from."""

from fastapi import APIRouter

from serving.deps import ScorerDep
from serving.schemas import ModelInfo
from training.lifecycle import APPROVED_AT, APPROVED_BY

router = APIRouter(tags=["model"])


@router.get("/model", response_model=ModelInfo)
def model_info(scorer: ScorerDep) -> ModelInfo:
    model = scorer.model
    return ModelInfo(
        name=model.name, version=model.version, alias=model.alias, run_id=model.run_id,
        feature_service=scorer.service.name, features=model.feature_names,
        code_version=model.tags.get("code_version"), data_digest=model.tags.get("data_digest"),
        data_start=model.tags.get("data_start"), data_end=model.tags.get("data_end"),
        approved_by=model.tags.get(APPROVED_BY), approved_at=model.tags.get(APPROVED_AT),
        loaded_at=model.loaded_at,
    )
