"""The raw data contract: each rule is detected with its rule name, column and row count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data.contract import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    ContractError,
    InputFileError,
    Violation,
    check_contract,
    normalize,
    read_transactions_file,
    validate,
)


@pytest.fixture
def frame() -> pd.DataFrame:
    """Five clean transactions with every contract column, typed as a parquet file would be."""
    return pd.DataFrame(
        {
            "transaction_id": np.array([10, 11, 12, 13, 14], dtype="int64"),
            "tx_datetime": pd.to_datetime(
                ["2024-03-01 08:00", "2024-03-01 09:30", "2024-03-02 12:00", "2024-03-03 23:59", "2024-03-04 00:01"]
            ),
            "customer_id": np.array([1, 2, 1, 3, 2], dtype="int64"),
            "terminal_id": np.array([100, 101, 102, 100, 103], dtype="int64"),
            "tx_amount": [12.5, 0.0, 99.99, 1500.0, 7.25],
            "device_id": ["d1", None, "d2", "d1", "007"],
            "device_type": ["mobile", None, "pos", "mobile", "desktop"],
            "device_os": ["ios", None, None, "ios", "windows"],
            "is_fraud": np.array([0, 0, 1, 0, 1], dtype="int64"),
            "fraud_scenario": np.array([0, 0, 2, 0, 1], dtype="int64"),
        }
    )


def _with(frame: pd.DataFrame, column: str, values: list[object]) -> pd.DataFrame:
    """Copy of the frame with one column replaced (object dtype keeps mixed values as given)."""
    out = frame.copy()
    out[column] = pd.Series(values, dtype=object)
    return out


def _rules(violations: list[Violation]) -> set[tuple[str, str]]:
    return {(v.rule, v.column) for v in violations}


def _single(violations: list[Violation], rule: str, column: str) -> Violation:
    matches = [v for v in violations if v.rule == rule and v.column == column]
    assert len(matches) == 1, f"expected one {rule} on {column}, got {violations}"
    return matches[0]


# ----------------------------------------------------------------------------- clean input


def test_clean_frame_has_no_violations(frame: pd.DataFrame) -> None:
    assert check_contract(frame) == []


def test_optional_columns_may_be_absent(frame: pd.DataFrame) -> None:
    required_only = frame[list(REQUIRED_COLUMNS)]
    assert check_contract(required_only) == []
    assert list(validate(required_only).columns) == list(REQUIRED_COLUMNS)


def test_contract_column_lists_do_not_overlap() -> None:
    assert not set(REQUIRED_COLUMNS) & set(OPTIONAL_COLUMNS)


# ----------------------------------------------------------------------------- column rules


@pytest.mark.parametrize("column", REQUIRED_COLUMNS)
def test_check_reports_missing_required_column(frame: pd.DataFrame, column: str) -> None:
    violation = _single(check_contract(frame.drop(columns=[column])), "missing_column", column)
    assert violation.rows == 0


def test_check_reports_unknown_column_and_suggests_the_contract_name(frame: pd.DataFrame) -> None:
    typo = frame.rename(columns={"device_id": "devce_id"})
    violations = check_contract(typo)
    violation = _single(violations, "unknown_column", "devce_id")
    assert violation.rows == 0
    assert "'device_id'" in violation.message
    assert _rules(violations) == {("unknown_column", "devce_id")}  # device_id is optional: no missing_column


def test_check_reports_duplicate_column(frame: pd.DataFrame) -> None:
    doubled = pd.concat([frame, frame[["customer_id"]]], axis=1)
    assert _single(check_contract(doubled), "duplicate_column", "customer_id").rows == 0


# ----------------------------------------------------------------------------- not null


@pytest.mark.parametrize("column", [*REQUIRED_COLUMNS, "is_fraud", "fraud_scenario"])
def test_check_rejects_nulls_in_non_nullable_column(frame: pd.DataFrame, column: str) -> None:
    broken = frame.copy()
    broken[column] = broken[column].astype(object)
    broken.loc[[1, 3], column] = None
    violations = check_contract(broken)
    assert _single(violations, "not_null", column).rows == 2
    assert not [v for v in violations if v.rule == "type"]  # a null is not also a type error


@pytest.mark.parametrize("column", ["device_id", "device_type", "device_os"])
def test_device_columns_allow_nulls(frame: pd.DataFrame, column: str) -> None:
    assert check_contract(_with(frame, column, [None] * len(frame))) == []


def test_empty_transaction_id_counts_as_null(frame: pd.DataFrame) -> None:
    broken = _with(frame, "transaction_id", ["a", "", "c", "d", "e"])
    assert _single(check_contract(broken), "not_null", "transaction_id").rows == 1


# ----------------------------------------------------------------------------- uniqueness


def test_check_rejects_duplicate_transaction_ids_counting_every_row_involved(frame: pd.DataFrame) -> None:
    broken = _with(frame, "transaction_id", [10, 11, 10, 13, 10])
    assert _single(check_contract(broken), "unique", "transaction_id").rows == 3


def test_integer_and_text_forms_of_the_same_id_are_duplicates(frame: pd.DataFrame) -> None:
    broken = _with(frame, "transaction_id", [10, "10", 12, 13, 14])
    assert _single(check_contract(broken), "unique", "transaction_id").rows == 2


# ----------------------------------------------------------------------------- types


@pytest.mark.parametrize("column", ["customer_id", "terminal_id", "is_fraud", "fraud_scenario"])
def test_check_rejects_non_integer_values_in_integer_column(frame: pd.DataFrame, column: str) -> None:
    broken = _with(frame, column, [1, 3.5, "abc", 0, 1])
    violation = _single(check_contract(broken), "type", column)
    assert violation.rows == 2
    assert "3.5" in violation.message and "abc" in violation.message


def test_whole_floats_and_numeric_text_are_accepted_as_integers(frame: pd.DataFrame) -> None:
    loose = _with(frame, "customer_id", [1.0, "2", 1, 3.0, "2"])
    assert check_contract(loose) == []
    assert validate(loose)["customer_id"].tolist() == frame["customer_id"].tolist()


def test_check_rejects_boolean_customer_id(frame: pd.DataFrame) -> None:
    broken = frame.assign(customer_id=[True, False, True, True, False])
    assert _single(check_contract(broken), "type", "customer_id").rows == len(frame)


def test_check_rejects_unparseable_timestamps(frame: pd.DataFrame) -> None:
    broken = _with(frame, "tx_datetime", ["2024-03-01T08:00:00", "yesterday", "2024-13-45", "2024-03-03", None])
    violations = check_contract(broken)
    assert _single(violations, "type", "tx_datetime").rows == 2
    assert _single(violations, "not_null", "tx_datetime").rows == 1


def test_check_rejects_numeric_timestamps(frame: pd.DataFrame) -> None:
    # Epoch numbers would silently be read as nanoseconds; the contract asks for timestamps.
    broken = frame.assign(tx_datetime=np.arange(len(frame), dtype="int64"))
    assert _single(check_contract(broken), "type", "tx_datetime").rows == len(frame)


def test_check_rejects_timestamps_outside_the_nanosecond_range(frame: pd.DataFrame) -> None:
    micro = frame["tx_datetime"].astype("datetime64[us]").tolist()
    micro[0] = np.datetime64("3000-01-01T00:00:00", "us")
    broken = frame.assign(tx_datetime=pd.Series(np.array(micro, dtype="datetime64[us]")))
    assert _single(check_contract(broken), "type", "tx_datetime").rows == 1


def test_check_rejects_non_numeric_amount(frame: pd.DataFrame) -> None:
    broken = _with(frame, "tx_amount", [1.0, "12.50", "twelve", 3, "n/a"])
    assert _single(check_contract(broken), "type", "tx_amount").rows == 2


def test_check_rejects_non_text_device_values(frame: pd.DataFrame) -> None:
    broken = _with(frame, "device_type", ["mobile", 3, None, 4.5, "pos"])
    assert _single(check_contract(broken), "type", "device_type").rows == 2


def test_check_rejects_non_id_transaction_id(frame: pd.DataFrame) -> None:
    broken = _with(frame, "transaction_id", [10, 11.5, "t12", b"13", 14])
    assert _single(check_contract(broken), "type", "transaction_id").rows == 2


# ----------------------------------------------------------------------------- value rules


def test_check_rejects_negative_amount(frame: pd.DataFrame) -> None:
    broken = frame.assign(tx_amount=[-1.0, 0.0, -0.01, 5.0, 2.0])
    assert _single(check_contract(broken), "non_negative", "tx_amount").rows == 2


def test_check_rejects_infinite_amount(frame: pd.DataFrame) -> None:
    broken = frame.assign(tx_amount=[np.inf, 1.0, -np.inf, 5.0, 2.0])
    violations = check_contract(broken)
    assert _single(violations, "finite", "tx_amount").rows == 2
    assert ("non_negative", "tx_amount") not in _rules(violations)  # -inf is reported once


def test_zero_amount_is_allowed(frame: pd.DataFrame) -> None:
    assert check_contract(frame.assign(tx_amount=0.0)) == []


def test_check_rejects_label_outside_zero_and_one(frame: pd.DataFrame) -> None:
    broken = frame.assign(is_fraud=[0, 2, 1, -1, 1])
    assert _single(check_contract(broken), "binary_label", "is_fraud").rows == 2


def test_check_collects_every_violation_not_just_the_first(frame: pd.DataFrame) -> None:
    broken = frame.drop(columns=["terminal_id"]).rename(columns={"device_os": "os"})
    broken = broken.assign(tx_amount=[-1.0, 1.0, 1.0, 1.0, 1.0], is_fraud=[0, 0, 0, 0, 7])
    assert _rules(check_contract(broken)) == {
        ("missing_column", "terminal_id"),
        ("unknown_column", "os"),
        ("non_negative", "tx_amount"),
        ("binary_label", "is_fraud"),
    }


# ----------------------------------------------------------------------------- validate / report


def test_validate_raises_contract_error_with_a_report_naming_rule_column_and_rows(frame: pd.DataFrame) -> None:
    broken = frame.assign(tx_amount=[-1.0, -2.0, 1.0, 1.0, 1.0]).rename(columns={"device_id": "devce_id"})
    with pytest.raises(ContractError) as caught:
        validate(broken)
    assert _rules(caught.value.violations) == {("non_negative", "tx_amount"), ("unknown_column", "devce_id")}
    report_lines = str(caught.value).splitlines()
    assert any("non_negative" in line and "tx_amount" in line and "2 rows" in line for line in report_lines)
    assert any("unknown_column" in line and "devce_id" in line for line in report_lines)
    assert isinstance(caught.value, ValueError)


def test_validate_returns_canonical_dtypes_in_contract_order(frame: pd.DataFrame) -> None:
    shuffled = frame[list(reversed(frame.columns))]
    clean = validate(shuffled)
    assert list(clean.columns) == [*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS]
    assert str(clean["tx_datetime"].dtype) == "datetime64[ns, UTC]"
    for column in ("customer_id", "terminal_id", "is_fraud", "fraud_scenario"):
        assert clean[column].dtype == np.dtype("int64"), column
    assert clean["tx_amount"].dtype == np.dtype("float64")
    assert clean["transaction_id"].tolist() == [str(i) for i in frame["transaction_id"]]
    assert clean["device_os"].tolist() == frame["device_os"].tolist()
    assert clean["device_os"].isna().sum() == frame["device_os"].isna().sum()


def test_naive_timestamps_are_read_as_utc(frame: pd.DataFrame) -> None:
    clean = normalize(frame)
    expected = frame["tx_datetime"].dt.tz_localize("UTC")
    pd.testing.assert_series_equal(clean["tx_datetime"], expected, check_names=False)


def test_aware_timestamps_are_converted_to_utc(frame: pd.DataFrame) -> None:
    paris = frame["tx_datetime"].dt.tz_localize("Europe/Paris")
    clean = normalize(frame.assign(tx_datetime=paris))
    assert (clean["tx_datetime"] == paris.dt.tz_convert("UTC")).all()
    assert str(clean["tx_datetime"].dtype) == "datetime64[ns, UTC]"
    assert clean["tx_datetime"].iloc[0].hour == paris.iloc[0].hour - 1  # Paris is UTC+1 in March


def test_iso_text_timestamps_with_offsets_and_without_are_accepted(frame: pd.DataFrame) -> None:
    texts = ["2024-03-01T08:00:00Z", "2024-03-01T10:30:00+01:00", "2024-03-02 12:00", "2024-03-03", "2024-03-04T00:01"]
    clean = validate(_with(frame, "tx_datetime", texts))
    assert clean["tx_datetime"].tolist() == [
        pd.Timestamp("2024-03-01 08:00", tz="UTC"),
        pd.Timestamp("2024-03-01 09:30", tz="UTC"),
        pd.Timestamp("2024-03-02 12:00", tz="UTC"),
        pd.Timestamp("2024-03-03 00:00", tz="UTC"),
        pd.Timestamp("2024-03-04 00:01", tz="UTC"),
    ]


# ----------------------------------------------------------------------------- reading files


def test_csv_and_parquet_files_are_both_accepted_and_agree(frame: pd.DataFrame, tmp_path: Path) -> None:
    csv_path, parquet_path = tmp_path / "tx.csv", tmp_path / "tx.parquet"
    frame.to_csv(csv_path, index=False)
    frame.to_parquet(parquet_path, index=False)
    from_csv = validate(read_transactions_file(csv_path))
    from_parquet = validate(read_transactions_file(parquet_path))
    pd.testing.assert_frame_equal(from_csv, from_parquet)
    assert len(from_csv) == len(frame)


def test_csv_keeps_leading_zeros_in_text_ids(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    _with(frame, "transaction_id", ["001", "002", "003", "004", "005"]).to_csv(path, index=False)
    clean = validate(read_transactions_file(path))
    assert clean["transaction_id"].tolist() == ["001", "002", "003", "004", "005"]
    assert clean["device_id"].tolist() == frame["device_id"].tolist()


def test_csv_type_violations_are_counted_in_rows(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    broken = _with(frame, "customer_id", [1, 3.5, "abc", 2, 2])
    broken = _with(broken, "tx_datetime", ["2024-03-01", "not a date", "2024-03-02", "2024-03-03", "2024-03-04"])
    broken.to_csv(path, index=False)
    violations = check_contract(read_transactions_file(path))
    assert _single(violations, "type", "customer_id").rows == 2
    assert _single(violations, "type", "tx_datetime").rows == 1


def test_pq_extension_is_read_as_parquet(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "tx.pq"
    frame.to_parquet(path, index=False)
    assert len(read_transactions_file(path)) == len(frame)


def test_read_rejects_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no file"):
        read_transactions_file(tmp_path / "absent.csv")


def test_read_rejects_unsupported_extension(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "tx.json"
    frame.to_json(path)
    with pytest.raises(InputFileError, match="unsupported extension"):
        read_transactions_file(path)


def test_read_rejects_corrupt_parquet(tmp_path: Path) -> None:
    path = tmp_path / "tx.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(InputFileError, match="not a readable parquet"):
        read_transactions_file(path)


def test_read_rejects_empty_csv(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    path.write_text("")
    with pytest.raises(InputFileError, match="empty"):
        read_transactions_file(path)
