"""The rollout watcher: acts on the analysis of each interval (monitoring/rollout.py).

One step (`watch_once`) looks at two things:

- the rollout in force: the challenger against the champion over the log rows scored since
  the last kept interval (or since the plan started). An interval with too few rows is not
  kept: the next step's window grows from the same start until it has enough. Each decided
  interval is kept as JSON under FRAUD_DATA_DIR/monitoring/rollout/<plan start>-v<challenger>/.
  `rollout_breach_intervals` breaches in a row stop the rollout (alias removed, the trail says
  which checks failed by how much) and raise an alert; `rollout_promote_after_intervals`
  healthy intervals in a row (when not 0) promote the challenger.
- the bake period after the last promotion (by hand or by the watcher), for
  `rollout_bake_seconds`: the new champion's rows since the promotion against the previous
  champion's in the same length of time before it (score distance, block-rate ratio, p99
  latency ratio: comparable traffic, as a canary), kept under
  .../rollout/bake-<promotion time>-v<new champion>/. A drift alert naming the new champion,
  raised after the promotion, or `rollout_breach_intervals` breaches in a row roll back to the
  previous champion and raise an alert.

Windows are cut by `scored_at` (when the scorer answered), not by payment time: a plan and a
promotion are wall-clock events, and a replay scores old payments now.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import pandas as pd
import redis

from contracts.alerts import alert_fields, publish_alert
from contracts.champion import AliasMove, read_audit_trail
from contracts.registry import CHAMPION, alias_version, registry_client
from contracts.rollout import RolloutPlan, read_plan
from contracts.settings import Settings
from monitoring.checks import DECISION_RATE, FEATURE_DRIFT, MISSING_VALUES, PREDICTION_DRIFT
from monitoring.prediction_log import read_prediction_log
from monitoring.rollout import IntervalVerdict, RolloutCheck, VersionFigures, analyse_interval
from training.lifecycle import LifecycleError, promote, rollback, stop_rollout

log = logging.getLogger(__name__)

WATCHER = "fraud rollout watch"
ROLLOUT_DIRNAME = "rollout"
BAKE_PREFIX = "bake-"
SCORED_AT = "scored_at"
LOG_COLUMNS = ("model_version", "risk_score", "decision", "latency_ms", SCORED_AT, "shadow_version", "shadow_score")
DRIFT_KINDS = frozenset({FEATURE_DRIFT, PREDICTION_DRIFT, DECISION_RATE, MISSING_VALUES})
ROLLOUT_STOPPED_ALERT = "rollout_stopped"
BAKE_ROLLBACK_ALERT = "bake_rollback"

Action = Literal["none", "waiting", "stop", "promote", "rollback"]


@dataclass(frozen=True)
class Streak:
    """How the kept intervals end: so many breaches in a row, or so many healthy ones."""

    breaches: int
    healthy: int


@dataclass(frozen=True)
class StageStep:
    """One step of the rollout (challenger vs champion) or of the bake (new vs previous champion)."""

    stage: Literal["rollout", "bake"]
    baseline: str  # the champion (rollout), the previous champion (bake)
    candidate: str  # the challenger (rollout), the new champion (bake)
    verdict: IntervalVerdict | None  # None: nothing analysed (a drift alert decided, or no window yet)
    streak: Streak
    action: Action
    message: str

    def line(self) -> str:
        """The step in one line, for the watcher's output."""
        head = f"{self.stage} v{self.candidate} vs v{self.baseline}"
        if self.verdict is None:
            return f"{head}: {self.message}"
        rows = f"rows v{self.verdict.champion.version}={self.verdict.champion.rows} "
        rows += f"v{self.verdict.challenger.version}={self.verdict.challenger.rows}"
        return f"{head} [{self.verdict.start} .. {self.verdict.end}] {rows}: {self.verdict.verdict}; {self.message}"


@dataclass(frozen=True)
class WatchStep:
    """What one step of the watcher saw and did."""

    at: datetime
    rollout: StageStep | None
    bake: StageStep | None

    def lines(self) -> list[str]:
        """One line per watched stage, or one saying there is nothing to watch."""
        stages = [stage.line() for stage in (self.rollout, self.bake) if stage is not None]
        return [f"{self.at.isoformat(timespec='seconds')} {line}" for line in stages] or [
            f"{self.at.isoformat(timespec='seconds')} nothing to watch: no rollout, no promotion in its bake period"
        ]


# --- The decision, on kept verdicts --------------------------------------------------------------


def streak(verdicts: Sequence[IntervalVerdict]) -> Streak:
    """Breaches or healthy intervals in a row at the end of `verdicts` (oldest first); an
    interval without a verdict (too few rows) neither breaks nor extends a streak."""
    decided = [verdict.verdict for verdict in verdicts if verdict.verdict != "insufficient"]
    if not decided:
        return Streak(0, 0)
    last = decided[-1]
    count = _trailing(decided, last)
    return Streak(breaches=count, healthy=0) if last == "breach" else Streak(breaches=0, healthy=count)


def _trailing(values: Sequence[str], value: str) -> int:
    count = 0
    for item in reversed(values):
        if item != value:
            break
        count += 1
    return count


def rollout_action(current: Streak, settings: Settings) -> Action:
    """Stop after `rollout_breach_intervals` breaches in a row; promote after
    `rollout_promote_after_intervals` healthy ones (0: never, a person promotes)."""
    if current.breaches >= settings.rollout_breach_intervals:
        return "stop"
    promote_after = settings.rollout_promote_after_intervals
    if promote_after and current.healthy >= promote_after:
        return "promote"
    return "none"


def bake_action(current: Streak, settings: Settings) -> Action:
    """Roll back after `rollout_breach_intervals` breaches in a row (a drift alert rolls back at
    once: `_bake_step` looks for one before any interval)."""
    return "rollback" if current.breaches >= settings.rollout_breach_intervals else "none"


def breach_reason(verdicts: Sequence[IntervalVerdict], intervals: int) -> str:
    """Each check that failed in the latest breached interval, with its value and threshold."""
    breached = [verdict for verdict in verdicts if verdict.verdict == "breach"]
    if not breached:
        return "no breach"
    latest = breached[-1]
    checks = "; ".join(check.message() for check in latest.breaches)
    return f"{intervals} intervals in a row breached; latest ({latest.start} .. {latest.end}): {checks}"


# --- Kept verdicts --------------------------------------------------------------------------------


def rollout_folder(settings: Settings, plan: RolloutPlan) -> Path:
    """Where one rollout's verdicts are kept: per plan start and challenger."""
    return settings.monitoring_dir / ROLLOUT_DIRNAME / f"{_stamp(_parse_time(plan.started_at))}-v{plan.version}"


def bake_folder(settings: Settings, promotion: AliasMove) -> Path:
    """Where one bake period's verdicts are kept: per promotion time and new champion."""
    return (
        settings.monitoring_dir
        / ROLLOUT_DIRNAME
        / f"{BAKE_PREFIX}{_stamp(_parse_time(promotion.at))}-v{promotion.to_version}"
    )


def keep_verdict(folder: Path, verdict: IntervalVerdict) -> Path:
    """Write an interval's verdict as <interval end>.json, whole or not at all."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_stamp(_parse_time(verdict.end))}.json"
    temp = folder / f".tmp-{uuid.uuid4().hex}-{path.name}"
    temp.write_text(json.dumps(verdict.to_dict(), indent=2), encoding="utf-8")
    os.replace(temp, path)
    return path


def kept_verdicts(folder: Path) -> list[IntervalVerdict]:
    """The verdicts kept in `folder`, oldest interval first; none when it does not exist."""
    if not folder.is_dir():
        return []
    verdicts = [verdict_from_dict(json.loads(path.read_text(encoding="utf-8"))) for path in folder.glob("*.json")]
    return sorted(verdicts, key=lambda verdict: _parse_time(verdict.end))


def verdict_from_dict(data: dict) -> IntervalVerdict:
    """An IntervalVerdict as `keep_verdict` wrote it."""
    return IntervalVerdict(
        start=data["start"],
        end=data["end"],
        mode=data["mode"],
        champion=VersionFigures(**data["champion"]),
        challenger=VersionFigures(**data["challenger"]),
        checks=[RolloutCheck(**check) for check in data.get("checks", [])],
        verdict=data["verdict"],
    )


def latest_folder(settings: Settings) -> Path | None:
    """The verdict folder written to last (a rollout's or a bake's), None when there is none."""
    root = settings.monitoring_dir / ROLLOUT_DIRNAME
    folders = [path for path in root.iterdir() if path.is_dir()] if root.is_dir() else []
    return max(folders, key=lambda path: path.stat().st_mtime) if folders else None


# --- The step -------------------------------------------------------------------------------------


def watch_once(settings: Settings, now: datetime) -> WatchStep:
    """Analyse the rollout in force and the bake period of the last promotion up to `now`, keep
    the verdicts, and stop, promote or roll back as the settings say."""
    client = registry_client(settings)
    plan = read_plan(client, settings)
    champion = alias_version(client, settings, CHAMPION)
    promotion = baking_promotion(read_audit_trail(client, settings), champion, now, settings)
    if plan is None and promotion is None:
        return WatchStep(now, None, None)
    scored = read_prediction_log(settings, columns=LOG_COLUMNS)
    rollout = _rollout_step(settings, plan, champion, scored, now) if plan is not None else None
    bake = _bake_step(settings, promotion, scored, now) if promotion is not None else None
    return WatchStep(now, rollout, bake)


def _rollout_step(
    settings: Settings, plan: RolloutPlan, champion: str | None, scored: pd.DataFrame, now: datetime
) -> StageStep:
    if champion is None:
        return StageStep("rollout", "-", plan.version, None, Streak(0, 0), "none", "no champion to compare with")
    folder = rollout_folder(settings, plan)
    kept = kept_verdicts(folder)
    start = _parse_time(kept[-1].end) if kept else _parse_time(plan.started_at)
    if now <= start:
        return StageStep("rollout", champion, plan.version, None, streak(kept), "none", "no new interval yet")
    verdict = analyse_interval(scored_between(scored, start, now), plan, champion, start, now, settings)
    if verdict.verdict == "insufficient":
        message = f"fewer than {settings.rollout_min_rows} rows a version so far: the window grows"
        return StageStep("rollout", champion, plan.version, verdict, streak(kept), "waiting", message)
    keep_verdict(folder, verdict)
    kept.append(verdict)
    current = streak(kept)
    action = rollout_action(current, settings)
    message = _counts(current, settings)
    if action == "stop":
        message = _stop(settings, plan, breach_reason(kept, current.breaches))
    elif action == "promote":
        message = _promote(settings, plan, current.healthy)
    return StageStep("rollout", champion, plan.version, verdict, current, action, message)


def _bake_step(settings: Settings, promotion: AliasMove, scored: pd.DataFrame, now: datetime) -> StageStep:
    previous, new = str(promotion.from_version), str(promotion.to_version)
    promoted_at = _parse_time(promotion.at)
    folder = bake_folder(settings, promotion)
    kept = kept_verdicts(folder)
    drift = drift_alerts_since(settings, new, promoted_at)
    if drift:
        reason = f"drift alert on v{new} inside its bake period: {drift[-1].get('message', drift[-1]['kind'])}"
        return StageStep("bake", previous, new, None, streak(kept), "rollback", _rollback(settings, new, reason))
    start = _parse_time(kept[-1].end) if kept else promoted_at
    if now <= start:
        return StageStep("bake", previous, new, None, streak(kept), "none", "no new interval yet")
    verdict = bake_verdict(scored, promotion, start, now, settings)
    if verdict.verdict == "insufficient":
        message = (
            f"fewer than {settings.rollout_min_rows} rows of v{new} since {start.isoformat()} "
            f"or of v{previous} before the promotion: the window grows"
        )
        return StageStep("bake", previous, new, verdict, streak(kept), "waiting", message)
    keep_verdict(folder, verdict)
    kept.append(verdict)
    current = streak(kept)
    action = bake_action(current, settings)
    message = f"{current.breaches} breached in a row of {settings.rollout_breach_intervals} allowed"
    if action == "rollback":
        message = _rollback(settings, new, f"bake period of v{new}: {breach_reason(kept, current.breaches)}")
    return StageStep("bake", previous, new, verdict, current, action, message)


def bake_verdict(
    scored: pd.DataFrame, promotion: AliasMove, start: datetime, end: datetime, settings: Settings
) -> IntervalVerdict:
    """The new champion's rows scored in [start, end) against the previous champion's over the
    bake period's length before the promotion: comparable traffic, judged as a canary."""
    previous, new = str(promotion.from_version), str(promotion.to_version)
    promoted_at = _parse_time(promotion.at)
    before = scored_between(scored, promoted_at - timedelta(seconds=settings.rollout_bake_seconds), promoted_at)
    after = scored_between(scored, start, end)
    frame = pd.concat(
        [before[before["model_version"].astype(str) == previous], after[after["model_version"].astype(str) == new]],
        ignore_index=True,
    )
    # The new champion as a canary answering all of its own traffic, the previous as the champion.
    plan = RolloutPlan(version=new, mode="canary", share=1.0, started_at=promotion.at, started_by=promotion.by)
    return analyse_interval(frame, plan, previous, start, end, settings)


def scored_between(scored: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """The log rows scored in [start, end)."""
    times = pd.to_datetime(scored[SCORED_AT], utc=True)
    inside = (times >= pd.Timestamp(start)) & (times < pd.Timestamp(end))
    return scored[inside.to_numpy()]


def drift_alerts_since(settings: Settings, version: str, since: datetime) -> list[dict[str, str]]:
    """Drift alerts naming `version` added to the alert stream after `since` (stream ids are
    milliseconds since the epoch: the stream is read from there)."""
    client = redis.Redis.from_url(settings.redis_url)
    try:
        entries = client.xrange(settings.alert_stream, min=f"{int(since.timestamp() * 1000)}-0")
    finally:
        client.close()
    alerts = [{_text(k): _text(v) for k, v in fields.items()} for _, fields in entries]  # type: ignore[union-attr]
    return [alert for alert in alerts if alert.get("kind") in DRIFT_KINDS and alert.get("model_version") == version]


def baking_promotion(
    trail: list[AliasMove], champion: str | None, now: datetime, settings: Settings
) -> AliasMove | None:
    """The last move of `champion` when it is a promotion from another version, to the version
    still champion, less than `rollout_bake_seconds` ago; None otherwise (a rollback ends a bake)."""
    moves = [move for move in trail if move.moves_champion]
    if not moves or settings.rollout_bake_seconds <= 0:
        return None
    last = moves[-1]
    if last.kind != "promote" or last.from_version is None or last.to_version != champion:
        return None
    if (now - _parse_time(last.at)).total_seconds() >= settings.rollout_bake_seconds:
        return None
    return last


# --- Acting ---------------------------------------------------------------------------------------


def _stop(settings: Settings, plan: RolloutPlan, reason: str) -> str:
    try:
        stop_rollout(settings, by=WATCHER, reason=reason)
    except LifecycleError as error:  # stopped by a person meanwhile
        return f"not stopped: {error}"
    _alert(settings, ROLLOUT_STOPPED_ALERT, f"rollout of v{plan.version} stopped: {reason}", plan.version)
    log.warning("rollout of v%s stopped: %s", plan.version, reason)
    return f"stopped: {reason}"


def _promote(settings: Settings, plan: RolloutPlan, healthy: int) -> str:
    reason = f"{healthy} healthy intervals in a row ({plan.mode}, share {plan.share:g})"
    try:
        promote(settings, plan.version, by=WATCHER, reason=reason)
    except LifecycleError as error:
        return f"not promoted: {error}"
    log.info("v%s promoted: %s", plan.version, reason)
    return f"promoted: {reason}"


def _rollback(settings: Settings, version: str, reason: str) -> str:
    try:
        move = rollback(settings, by=WATCHER, reason=reason)
    except LifecycleError as error:
        return f"not rolled back: {error}"
    _alert(settings, BAKE_ROLLBACK_ALERT, f"v{version} rolled back to v{move.to_version}: {reason}", version)
    log.warning("v%s rolled back to v%s: %s", version, move.to_version, reason)
    return f"rolled back to v{move.to_version}: {reason}"


def _alert(settings: Settings, kind: str, message: str, version: str) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    try:
        publish_alert(client, settings, alert_fields(kind, message, version, source=WATCHER))
    except redis.RedisError as error:  # the move is made and in the trail; the alert is what is lost
        log.error("alert %s not published (%s): %s", kind, error, message)
    finally:
        client.close()


def _counts(current: Streak, settings: Settings) -> str:
    promote_after = settings.rollout_promote_after_intervals
    promotion = f"{current.healthy} healthy of {promote_after} to promote" if promote_after else "a person promotes"
    return f"{current.breaches} breached of {settings.rollout_breach_intervals} to stop, {promotion}"


def _parse_time(text: str) -> datetime:
    """An ISO time as an aware UTC datetime (a time without zone is taken as UTC)."""
    moment = pd.Timestamp(text)
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    return moment.to_pydatetime()


def _stamp(moment: datetime) -> str:
    return f"{moment:%Y%m%dT%H%M%S%fZ}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
