"""The decision policy: a risk score to approve / review / block, by the configured thresholds.

A shared contract: the scorer decides with it, the drift job scores the reference's decision
rates with today's thresholds, and neither should load the other to do so.
"""

from __future__ import annotations

from typing import Literal

from contracts.settings import Settings

Decision = Literal["approve", "review", "block"]
DECISIONS: tuple[Decision, ...] = ("approve", "review", "block")


def decide(score: float, settings: Settings) -> Decision:
    """Map a risk score to a decision with the configured thresholds."""
    if score >= settings.block_threshold:
        return "block"
    if score >= settings.review_threshold:
        return "review"
    return "approve"
