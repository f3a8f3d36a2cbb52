"""The MLflow registry's conventions, shared by training (writes), the scorer and monitoring (read).

Names: the experiments, the `champion` alias, the tags every version carries (lineage,
approval) and the registered-model tags of the audit trail, and the artifacts of a
version's run (the model, the monitoring reference profile). Access: a client built
from the settings' explicit URI; nothing here sets MLflow's process-wide tracking URI,
except `fluent_tracking`, around MLflow calls that read nothing else.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

import mlflow
import mlflow.xgboost
import xgboost as xgb
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.tracking._model_registry import utils as _registry_state
from mlflow.tracking._tracking_service import utils as _tracking_state
from sqlalchemy.exc import SQLAlchemyError

from contracts.settings import Settings

CHAMPION = "champion"

TRAINING_EXPERIMENT = "fraud-detection"
EVALUATION_EXPERIMENT = "fraud-evaluation"
MONITORING_EXPERIMENT = "fraud-monitoring"

# Artifacts of a registered version's run.
MODEL_ARTIFACT = "model"  # log_model(name=...): XGBoost's own ubj format
REFERENCE_ARTIFACT_DIR = "reference"
REFERENCE_ARTIFACT_FILE = "reference.parquet"
REFERENCE_SCORE_COLUMN = "risk_score"  # the reference profile's score
REFERENCE_TIME_COLUMN = "tx_datetime"  # when each reference payment was made; every other column is a model input


class VersionTag:
    """Tags on every registered version: where it came from, and who approved it."""

    FEATURE_SERVICE = "feature_service"
    FEATURES = "features"  # JSON list, in the model's input order
    CODE_VERSION = "code_version"
    DATA_DIGEST = "data_digest"
    DATA_SOURCE = "data_source"
    DATA_START = "data_start"
    DATA_END = "data_end"
    DATA_ROWS = "data_rows"
    DATA_FRAUDS = "data_frauds"
    APPROVED_BY = "approval.by"
    APPROVED_AT = "approval.at"
    APPROVAL_NOTE = "approval.note"


# Registered-model tags: one per move of the champion alias, numbered (the audit trail).
AUDIT_TAG_PREFIX = "alias_audit."

_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def registry_client(settings: Settings) -> MlflowClient:
    """A client of the settings' tracking store and model registry (the same URI for both).

    A SQL store is reached as the client is made: a registry that is down fails here.
    """
    try:
        return MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
    except (MlflowException, SQLAlchemyError, OSError) as error:
        raise RegistryUnavailable.of(settings, error) from error


def experiment_id(client: MlflowClient, settings: Settings, name: str) -> str:
    """The id of the experiment `name`, created on first use.

    Without a tracking server, its artifacts live under FRAUD_DATA_DIR, not in the working
    directory (MLflow's default).
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    served = settings.mlflow_tracking_uri.startswith(("http://", "https://"))
    location = None if served else (settings.mlflow_artifacts_dir / name).as_uri()
    return str(client.create_experiment(name, artifact_location=location))


class RegistryUnavailable(RuntimeError):
    """The registry failed (down, unreachable, refused): never to be read as "nothing there"."""

    @classmethod
    def of(cls, settings: Settings, error: Exception) -> RegistryUnavailable:
        if isinstance(error, RegistryUnavailable):
            return error  # already said
        first_line = (str(error).splitlines() or [type(error).__name__])[0][:300]
        return cls(
            f"the model registry at {settings.registry_location} failed ({first_line}); "
            "check that it is up and that MLFLOW_TRACKING_URI points at it, then try again"
        )


# What a registry that is down or unreachable raises (HTTP server, SQL store, file store, or
# this module once it has said so in a sentence).
REGISTRY_ERRORS: tuple[type[Exception], ...] = (MlflowException, SQLAlchemyError, OSError, RegistryUnavailable)


def is_absent(error: MlflowException) -> bool:
    """Whether a registry error says that what was asked for does not exist, and nothing else.

    A missing model or version is RESOURCE_DOES_NOT_EXIST; a missing alias, MLflow reports as
    INVALID_PARAMETER_VALUE "Registered model alias ... not found".
    """
    code = error.error_code
    return code == "RESOURCE_DOES_NOT_EXIST" or (code == "INVALID_PARAMETER_VALUE" and "not found" in error.message)


def alias_version(client: MlflowClient, settings: Settings, alias: str = CHAMPION) -> str | None:
    """The version an alias points at, None when it points nowhere yet; RegistryUnavailable when
    the registry cannot tell (a failure never reads as "no champion")."""
    try:
        return str(client.get_model_version_by_alias(settings.model_name, alias).version)
    except MlflowException as error:
        if is_absent(error):
            return None
        raise RegistryUnavailable.of(settings, error) from error
    except REGISTRY_ERRORS as error:
        raise RegistryUnavailable.of(settings, error) from error


def registered_model_tags(client: MlflowClient, settings: Settings) -> dict[str, str] | None:
    """The registered model's tags, None when the model is not registered yet; RegistryUnavailable
    when the registry cannot tell."""
    try:
        return dict(client.get_registered_model(settings.model_name).tags)
    except MlflowException as error:
        if is_absent(error):
            return None
        raise RegistryUnavailable.of(settings, error) from error
    except REGISTRY_ERRORS as error:
        raise RegistryUnavailable.of(settings, error) from error


def load_booster(settings: Settings, version: str) -> xgb.Booster:
    """The booster of a registered version, downloaded through the settings' registry.

    The version's own artifact location, not a `models:/` URI: MLflow resolves those with
    the process-wide registry URI, whatever the call is given.
    """
    location = registry_client(settings).get_model_version_download_uri(settings.model_name, version)
    with tempfile.TemporaryDirectory() as folder:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=folder, tracking_uri=settings.mlflow_tracking_uri
        )
        booster: xgb.Booster = mlflow.xgboost.load_model(local)
    return booster


@contextlib.contextmanager
def fluent_tracking(settings: Settings) -> Iterator[None]:
    """MLflow's fluent API (start_run, log_model, log_input) on the settings' store, for this block only.

    `log_model(name=...)` has no client form: it reads the process's tracking and registry
    URIs. The block sets both and then puts back exactly what was there: MLflow keeps them
    in module globals (None: follow the environment) and mirrors them into
    MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI, which `Settings` reads too. For the training
    and evaluation runs of a CLI process; the scorer never enters it.
    """
    saved_tracking = _tracking_state._tracking_uri
    saved_registry = _registry_state._registry_uri
    saved_environment = {name: os.environ.get(name) for name in _URI_VARIABLES}
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    try:
        yield
    finally:
        # None, as MLflow itself stores it, means "follow the environment" again.
        mlflow.set_tracking_uri(saved_tracking)  # type: ignore[arg-type]
        mlflow.set_registry_uri(saved_registry)  # type: ignore[arg-type]
        for name, value in saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
