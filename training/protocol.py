"""The Fraud Detection Handbook's evaluation protocol (DESIGN.md section 4).

Train on 7 days, leave a 7-day label delay, test on the next 7 days without the cards
already known as compromised; score with AUC ROC, average precision and card precision
at 100 (CP@100).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    test: pd.DataFrame


@dataclass(frozen=True)
class Metrics:
    auc_roc: float
    average_precision: float
    card_precision_at_100: float

    def as_dict(self) -> dict[str, float]:
        return {
            "auc_roc": self.auc_roc,
            "average_precision": self.average_precision,
            "card_precision_at_100": self.card_precision_at_100,
        }


def _day_index(tx_datetime: pd.Series, origin: pd.Timestamp) -> pd.Series:
    return (tx_datetime - origin) // pd.Timedelta(days=1)


def handbook_split(
    transactions: pd.DataFrame, train_start: date, train_days: int = 7, delay_days: int = 7, test_days: int = 7
) -> Split:
    """Train/test split of the book's `get_train_test_set`.

    Each test day drops the customers known as compromised by then: fraud in the
    training week, or fraud up to the day before that test day minus the delay.
    """
    origin = pd.Timestamp(train_start, tz="UTC")
    day = _day_index(transactions["tx_datetime"], origin)
    train = transactions[(day >= 0) & (day < train_days)]
    if train.empty:
        raise ValueError(
            f"no transactions in the training week starting {train_start}; "
            "pick a --train-start inside the ingested data"
        )
    known = set(train.loc[train["is_fraud"] == 1, "customer_id"])
    test_parts = []
    for d in range(test_days):
        delay_day = transactions[day == train_days + d - 1]
        known |= set(delay_day.loc[delay_day["is_fraud"] == 1, "customer_id"])
        test_day = transactions[day == train_days + delay_days + d]
        test_parts.append(test_day[~test_day["customer_id"].isin(known)])
    test = pd.concat(test_parts)
    if test.empty:
        raise ValueError(
            f"no test transactions {train_days + delay_days} days after {train_start}; "
            "the data must cover training, delay and test periods"
        )
    return Split(train=train, test=test)


def card_precision_at_k(frame: pd.DataFrame, scores: np.ndarray, k: int = 100) -> float:
    """Mean over days of the share of true compromised cards among the k riskiest cards.

    Per day a card counts with its highest score and its highest label; cards caught
    (in the top k with fraud) on earlier days are dropped, as in the book.
    """
    data = pd.DataFrame(
        {
            "day": frame["tx_datetime"].dt.floor("D").to_numpy(),
            "customer_id": frame["customer_id"].to_numpy(),
            "is_fraud": frame["is_fraud"].to_numpy(),
            "score": scores,
        }
    )
    caught: set = set()
    precisions = []
    for _, day in data.groupby("day", sort=True):
        day = day[~day["customer_id"].isin(caught)]
        cards = day.groupby("customer_id")[["score", "is_fraud"]].max()
        top = cards.sort_values("score", ascending=False, kind="mergesort").head(k)
        detected = top.index[top["is_fraud"] == 1]
        precisions.append(len(detected) / k)
        caught.update(detected)
    return float(np.mean(precisions)) if precisions else float("nan")


def evaluate_scores(frame: pd.DataFrame, scores: np.ndarray) -> Metrics:
    """AUC ROC, average precision and CP@100 of `scores` against `frame['is_fraud']`."""
    labels = frame["is_fraud"].to_numpy()
    if labels.min() == labels.max():
        raise ValueError("the evaluation period has only one class; it needs frauds and legitimate payments")
    return Metrics(
        auc_roc=float(roc_auc_score(labels, scores)),
        average_precision=float(average_precision_score(labels, scores)),
        card_precision_at_100=card_precision_at_k(frame, scores, 100),
    )
