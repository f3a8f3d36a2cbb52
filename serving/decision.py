"""The decision policy: a risk score to approve / review / block, by the configured thresholds.

Its own module because the scorer, the drift job (the reference's decision rates) and the
benchmarks all apply it, and the latter two should not load the scorer to do so.
"""

from __future__ import annotations

from data.settings import Settings
from serving.schemas import Decision


def decide(score: float, settings: Settings) -> Decision:
    """Map a risk score to a decision with the configured thresholds."""
    if score >= settings.block_threshold:
        return "block"
    if score >= settings.review_threshold:
        return "review"
    return "approve"
