"""GET /model: which model version is serving and where it came from."""

from fastapi import APIRouter

from contracts.registry import VersionTag
from serving.deps import ScorerDep
from serving.schemas import ModelInfo

router = APIRouter(tags=["model"])


@router.get("/model", response_model=ModelInfo)
def model_info(scorer: ScorerDep) -> ModelInfo:
    model = scorer.model
    return ModelInfo(
        name=model.name,
        version=model.version,
        alias=model.alias,
        run_id=model.run_id,
        feature_service=scorer.service.name,
        features=model.feature_names,
        code_version=model.tags.get(VersionTag.CODE_VERSION),
        data_digest=model.tags.get(VersionTag.DATA_DIGEST),
        data_start=model.tags.get(VersionTag.DATA_START),
        data_end=model.tags.get(VersionTag.DATA_END),
        approved_by=model.tags.get(VersionTag.APPROVED_BY),
        approved_at=model.tags.get(VersionTag.APPROVED_AT),
        loaded_at=model.loaded_at,
    )
