"""machinery.quantity: parsing, rounding and formatting of Kubernetes quantities."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machinery.quantity import (
    QUANTITY_REGEX,
    cpu_millis,
    format_bytes,
    format_cpu,
    is_valid_quantity,
    parse_quantity,
    to_bytes,
)

PARSE_CASES = [
    ("0", "0"),
    ("1", "1"),
    ("100m", "0.1"),
    ("1500m", "1.5"),
    ("0.5", "0.5"),
    (".5", "0.5"),
    ("1.", "1"),
    ("+2", "2"),
    ("-1m", "-0.001"),
    ("1n", "0.000000001"),
    ("1u", "0.000001"),
    ("1k", "1000"),
    ("1M", "1000000"),
    ("1G", "1000000000"),
    ("1T", "1000000000000"),
    ("1P", "1000000000000000"),
    ("1E", "1000000000000000000"),
    ("1Ki", "1024"),
    ("1Mi", "1048576"),
    ("128Mi", "134217728"),
    ("1.5Gi", "1610612736"),
    ("1Ti", str(2**40)),
    ("1Pi", str(2**50)),
    ("1Ei", str(2**60)),
    ("1e3", "1000"),
    ("1E3", "1000"),
    ("1e+3", "1000"),
    ("1e-3", "0.001"),
    ("2.5e2", "250"),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_CASES, ids=[c[0] for c in PARSE_CASES])
def test_parse_quantity(text: str, expected: str) -> None:
    assert parse_quantity(text) == Decimal(expected)
    assert is_valid_quantity(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, Decimal(3)), (-2, Decimal(-2)), (0.1, Decimal("0.1")), (Decimal("1.25"), Decimal("1.25"))],
    ids=["int", "negative-int", "float-uses-repr", "decimal"],
)
def test_parse_quantity_numbers(value: object, expected: Decimal) -> None:
    assert parse_quantity(value) == expected  # type: ignore[arg-type]


BAD = [
    "",
    " 1",
    "1 ",
    ".",
    "+",
    "1K",  # Kubernetes spells kilo with a lowercase k
    "1ki",
    "1e",
    "e3",
    "1.2.3",
    "1Mi2",
    "1mm",
    "abc",
    "1,5",
    "0x10",
]


@pytest.mark.parametrize("text", BAD, ids=[repr(b) for b in BAD])
def test_parse_quantity_rejects_like_kubernetes(text: str) -> None:
    with pytest.raises(ValueError, match=r"^quantities must match the regular expression"):
        parse_quantity(text)
    assert not is_valid_quantity(text)


@pytest.mark.parametrize(
    "value",
    [True, None, [1], float("nan"), float("inf"), "1e999999999", "1" * 400, "1e-999"],
    ids=["bool", "none", "list", "nan", "inf", "huge-exponent", "too-many-digits", "tiny"],
)
def test_parse_quantity_rejects_other_values(value: object) -> None:
    with pytest.raises(ValueError):
        parse_quantity(value)  # type: ignore[arg-type]
    assert not is_valid_quantity(value)


def test_error_message_quotes_the_kubernetes_expression() -> None:
    with pytest.raises(ValueError) as info:
        parse_quantity("nope")
    assert QUANTITY_REGEX in str(info.value)
    assert "'nope'" in str(info.value)


@pytest.mark.parametrize(
    ("value", "millis"),
    [
        ("100m", 100),
        ("1", 1000),
        ("0.5", 500),
        ("2", 2000),
        ("1.0001", 1001),  # rounds up, never understates a request
        ("1n", 1),
        ("0", 0),
        ("-1.5m", -1),  # ceiling
        (1, 1000),
        (0.25, 250),
    ],
    ids=lambda v: repr(v),
)
def test_cpu_millis(value: object, millis: int) -> None:
    assert cpu_millis(value) == millis  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "count"),
    [("128Mi", 134217728), ("1Gi", 2**30), ("1k", 1000), ("1.5", 2), ("100m", 1), ("0", 0)],
    ids=["128Mi", "1Gi", "1k", "fraction-rounds-up", "milli-rounds-up", "zero"],
)
def test_to_bytes(value: str, count: int) -> None:
    assert to_bytes(value) == count


@pytest.mark.parametrize(
    ("millis", "text"),
    [(250, "250m"), (2000, "2"), (0, "0"), (1500, "1500m"), (-500, "-500m"), (-3000, "-3")],
    ids=lambda v: repr(v),
)
def test_format_cpu(millis: int, text: str) -> None:
    assert format_cpu(millis) == text


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (134217728, "128Mi"),
        (0, "0"),
        (1000, "1000"),
        (1024, "1Ki"),
        (1536, "1536"),  # 1.5Ki has no exact whole binary suffix
        (3 * 2**30, "3Gi"),
        (2**60, "1Ei"),
        (2**61, "2Ei"),
        (1024 * 1025, "1025Ki"),
        (-(2**20), "-1Mi"),
    ],
    ids=lambda v: repr(v),
)
def test_format_bytes(count: int, text: str) -> None:
    assert format_bytes(count) == text


@settings(deadline=None)
@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_format_cpu_round_trips(millis: int) -> None:
    assert cpu_millis(format_cpu(millis)) == millis


@settings(deadline=None)
@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_format_bytes_round_trips(count: int) -> None:
    assert to_bytes(format_bytes(count)) == count
