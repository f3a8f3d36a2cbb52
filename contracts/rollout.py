"""The rollout plan: which approved version is `challenger`, how it meets traffic, and how much.

The plan lives in the registry, beside the `challenger` alias (a registered-model tag), so
every scorer replica and the worker follow the same one; `training/lifecycle.py` writes it
under the registry lock and records each change in the audit trail. Who meets the challenger
is decided by a stable hash, never Python's `hash` (salted per process): a customer always
meets the same model in canary, whichever replica answers; a payment is in the shadow sample
or not, whoever scores it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Literal

from mlflow.tracking import MlflowClient

from contracts.registry import alias_version, registered_model_tags
from contracts.settings import Settings

CHALLENGER = "challenger"
PLAN_TAG = "rollout.plan"  # registered-model tag: the plan as JSON
RolloutMode = Literal["shadow", "canary"]
MODES: tuple[RolloutMode, ...] = ("shadow", "canary")
_BUCKETS = 2**64


@dataclass(frozen=True)
class RolloutPlan:
    """A challenger and how it meets traffic.

    shadow: the champion answers every payment; the challenger's score on the same features
    is logged beside it for `share` of payments (by transaction id).
    canary: `share` of customers (by customer id) are answered by the challenger.
    """

    version: str
    mode: RolloutMode
    share: float
    started_at: str
    started_by: str

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"rollout mode {self.mode!r} is not one of {', '.join(MODES)}")
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"rollout share {self.share} is not between 0 and 1")

    def to_tag(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_tag(cls, text: str) -> RolloutPlan:
        return cls(**json.loads(text))

    def answers_with_challenger(self, customer_id: int) -> bool:
        """Canary: whether this customer's payments are answered by the challenger."""
        return self.mode == "canary" and bucket(str(customer_id)) < self.share

    def shadows(self, transaction_id: str) -> bool:
        """Shadow: whether this payment is also scored by the challenger, off the request path."""
        return self.mode == "shadow" and bucket(transaction_id) < self.share


def bucket(key: str) -> float:
    """A number in [0, 1) fixed by `key`, the same in every process and on every machine."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _BUCKETS


def read_plan(client: MlflowClient, settings: Settings) -> RolloutPlan | None:
    """The plan in force: None when no version is `challenger`; RegistryUnavailable when the
    registry cannot tell. A plan tag naming another version than the alias is no plan (a
    move half done, or made outside `fraud rollout`): nobody meets that challenger."""
    version = alias_version(client, settings, CHALLENGER)
    if version is None:
        return None
    tags = registered_model_tags(client, settings)
    if tags is None:
        return None
    if PLAN_TAG not in tags:
        return None
    plan = RolloutPlan.from_tag(tags[PLAN_TAG])
    return plan if plan.version == version else None
