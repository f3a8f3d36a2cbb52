"""The rollout watcher (monitoring/rollout_watch.py): the counting and the decisions on hand-built
verdicts and log frames; then, on the real registry and Redis, with log files written by the
platform's own writer, a challenger that blocks everything is stopped after N breached
intervals, a good one is promoted after K healthy ones, and a promotion is rolled back by a
drift alert or by breaches inside its bake period."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import redis
from typer.testing import CliRunner

from contracts.alerts import alert_fields, latest_alerts, publish_alert
from contracts.champion import AliasMove, read_audit_trail
from contracts.decision import decide
from contracts.events import ScoringEvent
from contracts.files import write_parquet_atomically
from contracts.prediction_log import log_dir, plan_batch, prediction_table
from contracts.registry import CHAMPION, alias_version, registry_client
from contracts.rollout import read_plan
from contracts.settings import Settings
from fraud.app import app
from monitoring.rollout import IntervalVerdict, RolloutCheck, VersionFigures
from monitoring.rollout_watch import (
    WATCHER,
    Streak,
    bake_action,
    bake_verdict,
    baking_promotion,
    breach_reason,
    keep_verdict,
    kept_verdicts,
    rollout_action,
    scored_between,
    streak,
    watch_once,
)
from tests.support.registry import register
from training.lifecycle import approve, promote, start_rollout

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SHARES = {"approve": 0.9, "review": 0.06, "block": 0.04}


def figures(version: str, rows: int = 500) -> VersionFigures:
    return VersionFigures(version=version, rows=rows, decision_shares=dict(SHARES), p99_latency_ms=3.0)


def verdict(state: str, minute: int, checks: list[RolloutCheck] | None = None) -> IntervalVerdict:
    start, end = T0 + timedelta(minutes=minute), T0 + timedelta(minutes=minute + 1)
    return IntervalVerdict(
        start.isoformat(),
        end.isoformat(),
        "shadow",
        figures("1"),
        figures("2"),
        checks or [],
        state,  # type: ignore[arg-type]
    )


BLOCKS = RolloutCheck("block-rate ratio", 25.0, 2.0, passed=False)
AGREES = RolloutCheck("decision agreement", 0.95, 0.9, passed=True)


@pytest.fixture()
def local(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, rollout_min_rows=200, rollout_breach_intervals=3)


# --- Counting and deciding ------------------------------------------------------------------------


def test_streak_counts_the_breaches_at_the_end_only() -> None:
    kept = [verdict("breach", 0), verdict("healthy", 1), verdict("breach", 2), verdict("breach", 3)]
    assert streak(kept) == Streak(breaches=2, healthy=0)


def test_streak_counts_the_healthy_intervals_at_the_end() -> None:
    kept = [verdict("breach", 0), verdict("healthy", 1), verdict("healthy", 2)]
    assert streak(kept) == Streak(breaches=0, healthy=2)


def test_an_interval_without_a_verdict_neither_breaks_nor_extends_a_streak() -> None:
    kept = [verdict("breach", 0), verdict("insufficient", 1), verdict("breach", 2)]
    assert streak(kept) == Streak(breaches=2, healthy=0)
    assert streak([verdict("insufficient", 0)]) == streak([]) == Streak(0, 0)


def test_rollout_stops_at_the_configured_breaches_in_a_row(local: Settings) -> None:
    assert rollout_action(Streak(breaches=2, healthy=0), local) == "none"
    assert rollout_action(Streak(breaches=3, healthy=0), local) == "stop"


def test_rollout_never_promotes_by_default_however_long_it_is_healthy(local: Settings) -> None:
    assert local.rollout_promote_after_intervals == 0
    assert rollout_action(Streak(breaches=0, healthy=1000), local) == "none"


def test_rollout_promotes_after_the_configured_healthy_intervals(local: Settings) -> None:
    settings = Settings(**{**local.model_dump(), "rollout_promote_after_intervals": 4})
    assert rollout_action(Streak(breaches=0, healthy=3), settings) == "none"
    assert rollout_action(Streak(breaches=0, healthy=4), settings) == "promote"


def test_bake_rolls_back_at_the_configured_breaches_in_a_row(local: Settings) -> None:
    assert bake_action(Streak(0, 5), local) == "none"
    assert bake_action(Streak(2, 0), local) == "none"
    assert bake_action(Streak(3, 0), local) == "rollback"


def test_breach_reason_names_each_failed_check_with_value_and_threshold() -> None:
    kept = [verdict("breach", 0, [BLOCKS, AGREES]), verdict("breach", 1, [BLOCKS, AGREES])]
    reason = breach_reason(kept, 2)
    assert "2 intervals in a row" in reason
    assert "block-rate ratio 25 beyond 2" in reason
    assert "decision agreement" not in reason  # it passed


def test_kept_verdicts_read_back_equal_and_oldest_first(local: Settings) -> None:
    folder = local.monitoring_dir / "rollout" / "some-rollout"
    written = [verdict("healthy", 5, [AGREES]), verdict("breach", 1, [BLOCKS]), verdict("breach", 3, [BLOCKS])]
    for item in written:
        keep_verdict(folder, item)
    assert kept_verdicts(folder) == sorted(written, key=lambda item: item.end)
    assert [path.suffix for path in folder.iterdir()] == [".json"] * 3  # no temp file left
    assert kept_verdicts(folder / "absent") == []


def test_scored_between_selects_by_scoring_time_not_payment_time() -> None:
    scored = pd.DataFrame(
        {
            "tx_datetime": pd.to_datetime(["2024-01-01"] * 3, utc=True),  # a replay: old payments, scored now
            "scored_at": pd.to_datetime([T0, T0 + timedelta(seconds=30), T0 + timedelta(seconds=60)], utc=True),
        }
    )
    inside = scored_between(scored, T0, T0 + timedelta(seconds=60))
    assert inside["scored_at"].tolist() == scored["scored_at"].tolist()[:2]  # the end is excluded


def log_frame(version: str, scores: np.ndarray, start: datetime, settings: Settings) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model_version": version,
            "risk_score": scores,
            "decision": [decide(float(score), settings) for score in scores],
            "latency_ms": 2.0,
            "scored_at": pd.date_range(start, periods=len(scores), freq="100ms"),
            "shadow_version": None,
            "shadow_score": np.nan,
        }
    )


def champion_scores(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.concatenate([rng.beta(1, 30, rows - rows // 10), rng.uniform(0.3, 1.0, rows // 10)]), 0, 1)


def promotion_at(at: datetime) -> AliasMove:
    return AliasMove("promote", at.isoformat(), "someone", "1", "2", "better")


def test_bake_compares_the_new_champion_after_the_promotion_with_the_previous_before_it(local: Settings) -> None:
    promoted = T0 + timedelta(minutes=10)
    before = log_frame("1", champion_scores(400, 0), promoted - timedelta(minutes=1), local)
    stray = log_frame("2", np.zeros(400), promoted - timedelta(minutes=2), local)  # v2 before: not its figures
    after = log_frame("2", np.ones(400), promoted + timedelta(seconds=1), local)  # blocks everything
    scored = pd.concat([stray, before, after], ignore_index=True)
    result = bake_verdict(scored, promotion_at(promoted), promoted, promoted + timedelta(minutes=2), local)
    assert (result.champion.version, result.champion.rows) == ("1", 400)
    assert (result.challenger.version, result.challenger.rows) == ("2", 400)
    assert result.verdict == "breach"
    assert "block-rate ratio" in {check.name for check in result.breaches}


def test_bake_of_an_equal_new_champion_is_healthy(local: Settings) -> None:
    promoted = T0 + timedelta(minutes=10)
    before = log_frame("1", champion_scores(400, 0), promoted - timedelta(minutes=1), local)
    after = log_frame("2", champion_scores(400, 1), promoted + timedelta(seconds=1), local)
    scored = pd.concat([before, after], ignore_index=True)
    result = bake_verdict(scored, promotion_at(promoted), promoted, promoted + timedelta(minutes=2), local)
    assert result.verdict == "healthy", result.checks


def test_only_a_recent_promotion_to_the_champion_in_force_is_baked(local: Settings) -> None:
    promoted = T0
    trail = [AliasMove("promote", (T0 - timedelta(days=1)).isoformat(), "a", None, "1", "first"), promotion_at(T0)]
    inside, after = promoted + timedelta(minutes=30), promoted + timedelta(seconds=local.rollout_bake_seconds)
    assert baking_promotion(trail, "2", inside, local) == trail[-1]
    assert baking_promotion(trail, "2", after, local) is None  # the bake is over
    assert baking_promotion(trail, "1", inside, local) is None  # moved since (outside the trail)
    rolled_back = [*trail, AliasMove("rollback", inside.isoformat(), "b", "2", "1", "worse")]
    assert baking_promotion(rolled_back, "1", inside, local) is None  # a rollback ends the bake
    assert baking_promotion(trail[:1], "1", inside, local) is None  # a first champion has nothing to compare with


# --- On the real registry and Redis ---------------------------------------------------------------


@pytest.fixture()
def world(settings: Settings, tmp_path) -> Iterator[Settings]:
    """A model of its own in the run's registry (champion v1 and an approved v2), a private data
    dir (prediction log, kept verdicts) and a private alert stream on the run's Redis."""
    name = f"watch_{uuid.uuid4().hex[:8]}"
    own = Settings(
        **{
            **settings.model_dump(),
            "data_dir": tmp_path,
            "model_name": name,
            "alert_stream": f"fraud:alerts:{name}",
            "rollout_min_rows": 200,
            "rollout_breach_intervals": 3,
        }
    )
    champion, challenger = register(own, seed=1), register(own, seed=2)
    assert (champion, challenger) == ("1", "2")
    for version in (champion, challenger):
        approve(own, version, by="test-suite", note="watcher test")
    promote(own, champion, by="test-suite", reason="first champion")
    yield own
    redis.Redis.from_url(own.redis_url).delete(own.alert_stream)


def write_log(settings: Settings, rows: list[tuple[str, float, str | None, float | None]], start: datetime) -> None:
    """Log rows (answering version, its score, shadow version, shadow score) scored from `start`
    on, 10 ms apart, through the worker's own table and file writer."""
    entries, shadows = [], []
    base_ms = int(start.timestamp() * 1000)
    for i, (version, score, shadow_version, shadow_score) in enumerate(rows):
        scored_at = start + timedelta(milliseconds=10 * i)
        event = ScoringEvent(
            transaction={
                "transaction_id": f"{base_ms}-{i}",
                "tx_datetime": "2024-02-14T10:00:00+00:00",  # a replayed payment: its date is not its scoring time
                "customer_id": i % 50,
                "terminal_id": i % 70,
                "tx_amount": 10.0 + i % 13,
                "device_id": None,
            },
            features={"amount": 10.0 + i % 13},
            risk_score=score,
            decision=decide(score, settings),
            model_version=version,
            latency_ms=2.0,
            scored_at=scored_at.isoformat(),
            shadow_version=shadow_version,
        )
        entries.append((f"{base_ms}-{i}", event))
        shadows.append(shadow_score)
    for log_file in plan_batch(prediction_table(entries, shadows)):
        write_parquet_atomically(log_dir(settings) / log_file.relative_path, log_file.table)


def shadow_rows(
    count: int, seed: int, challenger_score: float | None
) -> list[tuple[str, float, str | None, float | None]]:
    """Champion v1 answers; v2's shadow score beside it: `challenger_score`, or v1's own plus noise."""
    scores = champion_scores(count, seed)
    return [("1", float(s), "2", challenger_score if challenger_score is not None else float(s) + 1e-4) for s in scores]


def plan_start(settings: Settings) -> datetime:
    plan = read_plan(registry_client(settings), settings)
    assert plan is not None
    return datetime.fromisoformat(plan.started_at)


def test_a_challenger_that_blocks_everything_is_stopped_after_the_configured_breaches(world: Settings) -> None:
    start_rollout(world, "2", "shadow", 1.0, by="test-suite", reason="try v2")
    started = plan_start(world)
    steps = []
    for interval in range(4):
        begin = started + timedelta(minutes=interval)
        write_log(world, shadow_rows(300, interval, challenger_score=1.0), begin + timedelta(seconds=1))
        steps.append(watch_once(world, begin + timedelta(minutes=1)))
    assert [step.rollout.action if step.rollout else None for step in steps] == ["none", "none", "stop", None]
    assert [step.rollout.streak.breaches for step in steps[:3] if step.rollout] == [1, 2, 3]
    client = registry_client(world)
    assert read_plan(client, world) is None and alias_version(client, world, "challenger") is None
    assert alias_version(client, world, CHAMPION) == "1"
    stop = read_audit_trail(client, world)[-1]
    assert (stop.kind, stop.by, stop.from_version) == ("challenger_stop", WATCHER, "2")
    assert "3 intervals in a row breached" in stop.reason and "block-rate ratio" in stop.reason
    assert "beyond 2" in stop.reason  # the threshold it went past
    alerts = latest_alerts(redis.Redis.from_url(world.redis_url), world)
    assert [alert["kind"] for alert in alerts] == ["rollout_stopped"]
    assert "block-rate ratio" in alerts[0]["message"] and alerts[0]["model_version"] == "2"
    folder = world.monitoring_dir / "rollout"
    assert len(kept_verdicts(next(folder.iterdir()))) == 3
    # `fraud rollout status` shows the kept verdicts of the stopped rollout.
    result = CliRunner().invoke(
        app, ["rollout", "status"], env=world.environment() | {"FRAUD_MODEL_NAME": world.model_name}
    )
    assert result.exit_code == 0, result.output
    assert "no rollout" in result.output and "block-rate ratio" in result.output and "breach" in result.output


def test_too_few_rows_keep_no_verdict_and_the_window_grows(world: Settings) -> None:
    start_rollout(world, "2", "shadow", 1.0, by="test-suite", reason="try v2")
    started = plan_start(world)
    write_log(world, shadow_rows(120, 0, challenger_score=1.0), started + timedelta(seconds=1))
    first = watch_once(world, started + timedelta(minutes=1))
    assert first.rollout is not None and first.rollout.action == "waiting"
    assert first.rollout.verdict is not None and first.rollout.verdict.verdict == "insufficient"
    write_log(world, shadow_rows(120, 1, challenger_score=1.0), started + timedelta(minutes=1, seconds=1))
    second = watch_once(world, started + timedelta(minutes=2))
    assert second.rollout is not None and second.rollout.verdict is not None
    assert second.rollout.verdict.verdict == "breach" and second.rollout.verdict.challenger.rows == 240
    assert second.rollout.verdict.start == first.rollout.verdict.start  # one window, grown


def test_a_good_challenger_is_promoted_after_the_configured_healthy_intervals_then_rolled_back_by_drift(
    world: Settings,
) -> None:
    settings = Settings(**{**world.model_dump(), "rollout_promote_after_intervals": 2})
    start_rollout(settings, "2", "shadow", 1.0, by="test-suite", reason="try v2")
    started = plan_start(settings)
    actions = []
    for interval in range(2):
        begin = started + timedelta(minutes=interval)
        write_log(settings, shadow_rows(300, interval, challenger_score=None), begin + timedelta(seconds=1))
        step = watch_once(settings, begin + timedelta(minutes=1))
        actions.append(step.rollout.action if step.rollout else None)
    assert actions == ["none", "promote"]
    client = registry_client(settings)
    assert alias_version(client, settings, CHAMPION) == "2" and read_plan(client, settings) is None
    promotion = next(move for move in reversed(read_audit_trail(client, settings)) if move.kind == "promote")
    assert (promotion.by, promotion.from_version) == (WATCHER, "1")
    assert "2 healthy intervals in a row" in promotion.reason

    # Inside the bake period a drift alert on v2 arrives: back to v1.
    r = redis.Redis.from_url(settings.redis_url)
    publish_alert(r, settings, alert_fields("prediction_drift", "risk_score drifted: 0.31 > 0.1", "2"))
    step = watch_once(settings, datetime.fromisoformat(promotion.at) + timedelta(minutes=5))
    assert step.bake is not None and step.bake.action == "rollback", step.lines()
    assert alias_version(client, settings, CHAMPION) == "1"
    back = read_audit_trail(client, settings)[-1]
    assert (back.kind, back.by, back.to_version) == ("rollback", WATCHER, "1")
    assert "drift alert" in back.reason and "risk_score drifted" in back.reason
    assert latest_alerts(r, settings)[-1]["kind"] == "bake_rollback"
    # Rolled back: nothing left to bake.
    assert watch_once(settings, datetime.fromisoformat(promotion.at) + timedelta(minutes=6)).bake is None


def test_a_promotion_whose_new_champion_blocks_everything_is_rolled_back_inside_its_bake(world: Settings) -> None:
    write_log(
        world, [("1", float(s), None, None) for s in champion_scores(300, 0)], datetime.now(UTC) - timedelta(minutes=5)
    )
    promote(world, "2", by="test-suite", reason="by hand")
    promoted = datetime.fromisoformat(read_audit_trail(registry_client(world), world)[-1].at)
    actions = []
    for interval in range(3):
        begin = promoted + timedelta(minutes=interval)
        write_log(world, [("2", 1.0, None, None)] * 300, begin + timedelta(seconds=1))
        step = watch_once(world, begin + timedelta(minutes=1))
        actions.append(step.bake.action if step.bake else None)
    assert actions == ["none", "none", "rollback"]
    client = registry_client(world)
    assert alias_version(client, world, CHAMPION) == "1"
    back = read_audit_trail(client, world)[-1]
    assert (back.kind, back.by) == ("rollback", WATCHER) and "block-rate ratio" in back.reason


def test_watch_steps_every_interval_touches_its_heartbeat_and_ends_on_sigterm(world: Settings, tmp_path) -> None:
    beat = tmp_path / "loop.beat"
    env = {**os.environ, **world.environment(), "FRAUD_MODEL_NAME": world.model_name}
    argv = [sys.executable, "-m", "fraud", "rollout", "watch", "--interval", "1", "--heartbeat", str(beat)]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not beat.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the watcher never touched its heartbeat"
            time.sleep(0.2)
        first = beat.stat().st_mtime_ns
        time.sleep(3.5)  # a few intervals
        assert beat.stat().st_mtime_ns > first, "the heartbeat was not touched again"
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        out, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors
    lines = out.splitlines()
    assert len(lines) >= 2 and all("nothing to watch" in line for line in lines), out
