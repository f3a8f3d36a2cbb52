"""The served model: loaded from the MLflow registry, swapped when the `champion` alias moves."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import xgboost as xgb

from contracts.registry import CHAMPION, REGISTRY_ERRORS, load_booster, registry_client
from contracts.settings import Settings
from serving.explain import Contributions

log = logging.getLogger(__name__)

# A new champion that cannot be read or served is not swapped in (ValueError: not servable).
SWAP_ERRORS: tuple[type[Exception], ...] = (ValueError, *REGISTRY_ERRORS)


@dataclass
class LoadedModel:
    """A registered model version held in memory, with what it needs to say where it came from."""

    name: str
    version: str
    alias: str
    run_id: str | None
    booster: xgb.Booster
    feature_names: list[str]
    tags: dict[str, str]
    contributions: Contributions
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def load_model(settings: Settings, alias: str = CHAMPION) -> LoadedModel:
    """Load the version `alias` points at; the booster runs on one thread, warmed up."""
    version = registry_client(settings).get_model_version_by_alias(settings.model_name, alias)
    booster = load_booster(settings, str(version.version))
    booster.set_param({"nthread": 1})
    names = list(booster.feature_names or [])
    if not names:
        raise ValueError(f"model {settings.model_name} v{version.version} carries no feature names; retrain it")
    booster.inplace_predict(np.zeros((1, len(names))))  # first call allocates; keep it off the request path
    return LoadedModel(
        name=settings.model_name,
        version=str(version.version),
        alias=alias,
        run_id=version.run_id,
        booster=booster,
        feature_names=names,
        tags=dict(version.tags),
        contributions=Contributions(booster),
    )


@dataclass
class RegistryStatus:
    reachable: bool = True
    checked_at: datetime | None = None
    error: str | None = None


class ModelHolder:
    """Holds the serving model; a request reads `current` once, a swap replaces it atomically.

    `validate` is called on a new model before it is swapped in (the scorer checks its
    features against the feature service); a model that fails it is not served.
    """

    def __init__(
        self, settings: Settings, model: LoadedModel, validate: Callable[[LoadedModel], None] = lambda model: None
    ) -> None:
        self.settings = settings
        self.current = model
        self.validate = validate
        self.status = RegistryStatus(checked_at=datetime.now(UTC))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Swap in the version `champion` now points at, if it moved; True when it swapped."""
        try:
            client = registry_client(self.settings)
            target = str(client.get_model_version_by_alias(self.settings.model_name, self.current.alias).version)
            self.status = RegistryStatus(reachable=True, checked_at=datetime.now(UTC))
        except REGISTRY_ERRORS as error:
            # Keep serving what we have; /health reports the registry as unreachable.
            self.status = RegistryStatus(
                reachable=False, checked_at=datetime.now(UTC), error=str(error).splitlines()[0][:300]
            )
            log.warning("model registry unreachable, still serving v%s: %s", self.current.version, error)
            return False
        if target == self.current.version:
            return False
        candidate = load_model(self.settings, self.current.alias)
        self.validate(candidate)
        previous, self.current = self.current, candidate
        log.info("now serving %s v%s (was v%s)", candidate.name, candidate.version, previous.version)
        return True

    def start(self) -> None:
        """Check the alias every `model_poll_seconds` in a background thread."""
        self._thread = threading.Thread(target=self._watch, name="champion-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _watch(self) -> None:
        while not self._stop.wait(self.settings.model_poll_seconds):
            try:
                self.refresh()
            except SWAP_ERRORS as error:
                # A version that cannot be loaded or served is not swapped in; say so and go on.
                self.status = RegistryStatus(
                    reachable=True,
                    checked_at=datetime.now(UTC),
                    error=f"could not serve the new champion: {error}"[:300],
                )
                log.error("keeping v%s: %s", self.current.version, error)
