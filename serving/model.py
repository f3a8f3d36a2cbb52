"""The served model: loaded from the MLflow registry, swapped when the `champion` alias moves."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import xgboost as xgb
from mlflow.entities.model_registry import ModelVersion

from contracts.champion import is_approved, last_approved_champion, read_audit_trail
from contracts.registry import CHAMPION, REGISTRY_ERRORS, alias_version, load_booster, registry_client
from contracts.rollout import CHALLENGER, RolloutPlan, read_plan
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


class UnapprovedChampion(ValueError):
    """The alias points at a version nobody approved: it is never served."""

    def __init__(self, settings: Settings, version: str) -> None:
        self.version = version
        super().__init__(
            f"{settings.model_name} v{version} is champion but not approved; it is not served "
            f"(approve it with `fraud model approve {version}` or roll back with `fraud model rollback`)"
        )


def champion_version(settings: Settings, alias: str = CHAMPION) -> ModelVersion:
    """The registered version the alias points at (registry errors propagate)."""
    return registry_client(settings).get_model_version_by_alias(settings.model_name, alias)


def load_version(settings: Settings, version: ModelVersion, alias: str = CHAMPION) -> LoadedModel:
    """Load an approved registered version; the booster runs on one thread, warmed up."""
    if not is_approved(version):
        raise UnapprovedChampion(settings, str(version.version))
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


def load_serving_model(settings: Settings) -> tuple[LoadedModel, str | None]:
    """The model a scorer starts with, and the version it refused, if any (see `serving_version`)."""
    version, refused = serving_version(settings)
    return load_version(settings, version), refused


def serving_version(settings: Settings) -> tuple[ModelVersion, str | None]:
    """The version a scorer would start with, and the version it refuses, if any.

    The champion when it is approved; otherwise the last approved champion of the audit
    trail (contracts/champion.py), never the unapproved one. NoServableModel, saying what to
    do, when there is none; RegistryUnavailable when the registry cannot tell.
    """
    local = settings.local_registry_file
    if local is not None and not local.exists():
        raise NoServableModel(
            f"no registry at {local}: train and promote a model first (`fraud train`), "
            "or point MLFLOW_TRACKING_URI at the registry that holds one"
        )
    client = registry_client(settings)
    champion = alias_version(client, settings)
    if champion is None:
        raise NoServableModel(
            f"no version of {settings.model_name} is {CHAMPION} in the registry at {settings.registry_location}: "
            "train and promote one (`fraud train`, `fraud model approve V`, `fraud model promote V`), "
            "or point MLFLOW_TRACKING_URI at the registry that holds it"
        )
    version = client.get_model_version(settings.model_name, champion)
    if is_approved(version):
        return version, None
    refusal = UnapprovedChampion(settings, champion)
    fallback = last_approved_champion(client, settings, read_audit_trail(client, settings), before=champion)
    if fallback is None:
        raise NoServableModel(f"{refusal}; no earlier champion is approved, so the scorer does not start")
    log.error("%s; serving v%s, the last approved champion", refusal, fallback)
    return client.get_model_version(settings.model_name, fallback), champion


@dataclass(frozen=True)
class Rollout:
    """The plan in force and its challenger, loaded: swapped as one, so a request sees both or neither."""

    plan: RolloutPlan
    challenger: LoadedModel


class NoServableModel(RuntimeError):
    """Nothing the scorer may serve: the message says what to do."""


@dataclass
class RegistryStatus:
    reachable: bool = True
    checked_at: datetime | None = None
    error: str | None = None
    refused_version: str | None = None  # the champion the scorer will not serve (not approved)


class ModelHolder:
    """Holds the serving model; a request reads `current` once, a swap replaces it atomically.

    `validate` is called on a new model before it is swapped in (the scorer checks its
    features against the feature service); a model that fails it is not served. A champion
    nobody approved is not loaded at all: the holder keeps its model, says so in `status`,
    and calls `refused(version, message)` once per refused version (the scorer raises an alert).

    On the same poll it follows the rollout plan (contracts/rollout.py): `rollout` holds the
    plan and its challenger, loaded (approved and validated like a champion), or None: no
    plan, or a challenger that may not serve. A registry error keeps the rollout in force.
    """

    def __init__(
        self,
        settings: Settings,
        model: LoadedModel,
        validate: Callable[[LoadedModel], None] = lambda model: None,
        refused: Callable[[str, str], None] = lambda version, message: None,
        refused_version: str | None = None,
    ) -> None:
        self.settings = settings
        self.current = model
        self.validate = validate
        self.refused = refused
        self.status = RegistryStatus(checked_at=datetime.now(UTC))
        if refused_version is not None:
            self._refuse(UnapprovedChampion(settings, refused_version))
        self.rollout: Rollout | None = None
        self._plan_seen: RolloutPlan | None = None  # the last plan read, served or not servable
        self._refused_challenger: str | None = None  # a challenger nobody approved (logged once)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Follow the champion alias, then the rollout plan; True when the champion swapped."""
        try:
            return self.refresh_champion()
        finally:  # a champion that cannot swap in does not hold the rollout back
            if self.status.reachable:
                self.refresh_rollout()

    def refresh_rollout(self) -> None:
        """Swap in the plan the registry now holds, with its challenger loaded; None when it
        has none. A challenger that is not approved or cannot serve means no rollout."""
        try:
            plan = read_plan(registry_client(self.settings), self.settings)
        except REGISTRY_ERRORS as error:
            # Keep the plan in force; /health reports the registry as unreachable.
            self.status = RegistryStatus(
                reachable=False, checked_at=datetime.now(UTC), error=str(error).splitlines()[0][:300]
            )
            log.warning("model registry unreachable, keeping the rollout in force: %s", error)
            return
        if plan == self._plan_seen:
            return
        current = self.rollout
        if plan is None:
            self.rollout, self._plan_seen, self._refused_challenger = None, None, None
            if current is not None:
                log.info("rollout of v%s ended", current.plan.version)
            return
        if current is not None and current.challenger.version == plan.version:
            challenger = current.challenger  # the same version under a new share or mode
        else:
            try:
                version = registry_client(self.settings).get_model_version(self.settings.model_name, plan.version)
                challenger = load_version(self.settings, version, CHALLENGER)
                self.validate(challenger)
            except REGISTRY_ERRORS as error:
                # The rollout in force stays; the new plan is tried again on the next poll.
                self.status = RegistryStatus(
                    reachable=False, checked_at=datetime.now(UTC), error=str(error).splitlines()[0][:300]
                )
                log.warning("could not load challenger v%s, keeping the rollout in force: %s", plan.version, error)
                return
            except UnapprovedChampion:
                # Nobody meets it; its approval is checked again on each poll (tags only, no download).
                if self._refused_challenger != plan.version:
                    log.error("v%s is %s but not approved: no rollout until it is", plan.version, CHALLENGER)
                self.rollout, self._refused_challenger = None, plan.version
                return
            except ValueError as error:  # not servable: nobody meets it, until the plan changes
                log.error("no rollout of v%s: %s", plan.version, error)
                self.rollout, self._plan_seen = None, plan
                return
        self.rollout, self._plan_seen, self._refused_challenger = Rollout(plan, challenger), plan, None
        log.info("rollout in force: v%s, %s, share %s", plan.version, plan.mode, plan.share)

    def refresh_champion(self) -> bool:
        """Swap in the version `champion` now points at, if it moved; True when it swapped."""
        try:
            target = champion_version(self.settings, self.current.alias)
        except REGISTRY_ERRORS as error:
            # Keep serving what we have; /health reports the registry as unreachable.
            self.status = RegistryStatus(
                reachable=False, checked_at=datetime.now(UTC), error=str(error).splitlines()[0][:300]
            )
            log.warning("model registry unreachable, still serving v%s: %s", self.current.version, error)
            return False
        if str(target.version) == self.current.version:
            self.status = RegistryStatus(reachable=True, checked_at=datetime.now(UTC))
            return False
        try:
            candidate = load_version(self.settings, target, self.current.alias)
        except UnapprovedChampion as refusal:
            self._refuse(refusal)
            return False
        self.validate(candidate)
        self.status = RegistryStatus(reachable=True, checked_at=datetime.now(UTC))
        previous, self.current = self.current, candidate
        log.info("now serving %s v%s (was v%s)", candidate.name, candidate.version, previous.version)
        return True

    def _refuse(self, refusal: UnapprovedChampion) -> None:
        first = self.status.refused_version != refusal.version
        message = f"{refusal}; still serving v{self.current.version}"
        self.status = RegistryStatus(
            reachable=True, checked_at=datetime.now(UTC), error=message[:300], refused_version=refusal.version
        )
        if first:
            log.error(message)
            self.refused(refusal.version, message)

    def start(self) -> None:
        """Read the rollout plan now, then check the aliases every `model_poll_seconds` in a background thread."""
        self.refresh_rollout()
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
