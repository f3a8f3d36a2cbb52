"""The rollout analysis on log windows built by hand: each bad challenger is caught by the
check that should catch it, and a good one is healthy."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wasserstein_distance

from contracts.decision import decide
from contracts.rollout import RolloutPlan
from contracts.settings import Settings
from monitoring.rollout import analyse_interval, wasserstein

START, END = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC)
ROWS = 1_000


@pytest.fixture()
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, rollout_min_rows=200)


def champion_scores(seed: int = 0) -> np.ndarray:
    # Mostly low scores, a tail of high ones: about 4 % blocked, 6 % reviewed.
    rng = np.random.default_rng(seed)
    return np.clip(np.concatenate([rng.beta(1, 30, int(ROWS * 0.9)), rng.uniform(0.3, 1.0, ROWS // 10)]), 0, 1)


def shadow_log(champion: np.ndarray, challenger: np.ndarray, settings: Settings) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model_version": "1",
            "risk_score": champion,
            "decision": [decide(score, settings) for score in champion],
            "latency_ms": 2.0,
            "shadow_version": "2",
            "shadow_score": challenger,
        }
    )


def canary_log(champion: np.ndarray, challenger: np.ndarray, extra_ms: float, settings: Settings) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    frames = [
        pd.DataFrame(
            {
                "model_version": version,
                "risk_score": scores,
                "decision": [decide(score, settings) for score in scores],
                "latency_ms": rng.gamma(4.0, 0.5, len(scores)) + extra,
            }
        )
        for version, scores, extra in (("1", champion, 0.0), ("2", challenger, extra_ms))
    ]
    return pd.concat(frames, ignore_index=True)


def plan(mode: str) -> RolloutPlan:
    return RolloutPlan(version="2", mode=mode, share=0.5, started_at=START.isoformat(), started_by="test")  # type: ignore[arg-type]


def test_wasserstein_matches_scipy() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.normal(0, 1, 500), rng.normal(0.3, 1.2, 300)
    assert wasserstein(a, b) == pytest.approx(wasserstein_distance(a, b), rel=1e-9)


def test_shadow_of_an_equal_model_is_healthy(settings: Settings) -> None:
    scores = champion_scores()
    verdict = analyse_interval(shadow_log(scores, scores + 0.001, settings), plan("shadow"), "1", START, END, settings)
    assert verdict.verdict == "healthy", verdict.checks
    assert verdict.champion.rows == verdict.challenger.rows == ROWS


def test_shadow_of_a_model_that_blocks_everything_breaches_block_rate_and_agreement(settings: Settings) -> None:
    scores = champion_scores()
    verdict = analyse_interval(shadow_log(scores, np.ones(ROWS), settings), plan("shadow"), "1", START, END, settings)
    assert verdict.verdict == "breach"
    assert {check.name for check in verdict.breaches} == {"score distance", "decision agreement", "block-rate ratio"}
    assert verdict.challenger.decision_shares["block"] == 1.0


def test_shadow_of_shuffled_scores_breaches_agreement_only(settings: Settings) -> None:
    # Same distribution, pairs broken: only a pairwise comparison on the same payments sees it.
    scores = champion_scores()
    shuffled = np.random.default_rng(3).permutation(scores)
    verdict = analyse_interval(shadow_log(scores, shuffled, settings), plan("shadow"), "1", START, END, settings)
    assert [check.name for check in verdict.breaches] == ["decision agreement"]


def test_canary_of_a_slower_model_breaches_latency_only(settings: Settings) -> None:
    log = canary_log(champion_scores(0), champion_scores(1), extra_ms=20.0, settings=settings)
    verdict = analyse_interval(log, plan("canary"), "1", START, END, settings)
    assert [check.name for check in verdict.breaches] == ["p99 latency ratio"]


def test_canary_of_an_equal_model_is_healthy(settings: Settings) -> None:
    log = canary_log(champion_scores(0), champion_scores(1), extra_ms=0.0, settings=settings)
    assert analyse_interval(log, plan("canary"), "1", START, END, settings).verdict == "healthy"


def test_too_few_payments_give_no_verdict(settings: Settings) -> None:
    scores = champion_scores()[:150]
    verdict = analyse_interval(shadow_log(scores, np.ones(150), settings), plan("shadow"), "1", START, END, settings)
    assert verdict.verdict == "insufficient" and verdict.checks == []
