"""The Handbook protocol on hand-built data: split, removal of known compromised cards, CP@k."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from training.protocol import card_precision_at_k, evaluate_scores, handbook_split

START = date(2024, 5, 1)


def frame(rows: list[tuple[int, float, int]]) -> pd.DataFrame:
    """(customer, days after START, is_fraud) -> transactions."""
    data = pd.DataFrame(rows, columns=["customer_id", "day", "is_fraud"])
    data["tx_datetime"] = pd.Timestamp(START, tz="UTC") + pd.to_timedelta(data.pop("day"), unit="D")
    data["transaction_id"] = range(len(data))
    return data


def test_split_drops_cards_known_compromised_before_each_test_day() -> None:
    data = frame(
        [
            (1, 0.5, 1),  # fraud in the training week: card 1 known from the first test day
            (2, 9.5, 1),  # fraud on delay day 9: known from test day 14 + (9 - 6) = 17 on
            (1, 14.5, 0),
            (2, 14.5, 0),
            (2, 17.5, 0),
            (3, 15.5, 0),
            (4, 3.0, 0),
        ]
    )
    split = handbook_split(data, START)
    assert sorted(split.train["customer_id"]) == [1, 4]
    test = split.test.assign(day=(split.test["tx_datetime"] - pd.Timestamp(START, tz="UTC")).dt.days)
    assert set(zip(test["customer_id"], test["day"])) == {(2, 14), (3, 15)}


def test_split_rejects_a_training_week_outside_the_data() -> None:
    with pytest.raises(ValueError, match="no transactions in the training week"):
        handbook_split(frame([(1, 0.5, 0)]), date(2030, 1, 1))


def test_card_precision_counts_each_card_once_and_drops_cards_caught_earlier() -> None:
    data = frame([(1, 0.1, 1), (1, 0.2, 0), (2, 0.3, 0), (1, 1.1, 1), (3, 1.2, 1)])
    scores = np.array([0.9, 0.95, 0.1, 0.99, 0.5])
    # Day 0 top-2: card 1 (fraud) and card 2 -> 1/2. Day 1: card 1 already caught; card 3 -> 1/2.
    assert card_precision_at_k(data, scores, k=2) == pytest.approx(0.5)
    assert card_precision_at_k(data, scores, k=1) == pytest.approx(1.0)


def test_evaluate_scores_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="only one class"):
        evaluate_scores(frame([(1, 0.1, 0), (2, 0.2, 0)]), np.array([0.1, 0.2]))


def test_perfect_scores_give_perfect_auc_and_average_precision() -> None:
    data = frame([(1, 0.1, 1), (2, 0.2, 0), (3, 0.3, 0), (4, 0.4, 1)])
    metrics = evaluate_scores(data, data["is_fraud"].to_numpy(dtype=float))
    assert metrics.auc_roc == pytest.approx(1.0)
    assert metrics.average_precision == pytest.approx(1.0)
