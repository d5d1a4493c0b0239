"""Kubernetes ``resource.Quantity``: parse ``"100m"``, ``"128Mi"``, ``"1e3"`` into exact numbers.

Contract:

* :func:`parse_quantity` returns the exact value as a :class:`decimal.Decimal` (no float
  rounding ever happens); it accepts what Kubernetes accepts: an optional sign, a decimal number
  (``"1"``, ``"1.5"``, ``".5"``, ``"1."``) and one suffix out of the binary SI (``Ki Mi Gi Ti Pi
  Ei``), decimal SI (``n u m "" k M G T P E``) or decimal-exponent (``e3``, ``E-2``) families.
  Anything else raises :class:`ValueError` whose message begins like the Kubernetes one.
* :func:`cpu_millis` and :func:`to_bytes` round *up* to the next whole unit (like Kubernetes'
  ``MilliValue``/``Value``), so a request is never understated.
* :func:`format_cpu` / :func:`format_bytes` give the shortest exact canonical string, and
  ``parse_quantity(format_x(n))`` gives back ``n`` (scaled) for every integer ``n``.
"""

from __future__ import annotations

import decimal
import re
from decimal import Decimal

__all__ = [
    "QUANTITY_REGEX",
    "cpu_millis",
    "format_bytes",
    "format_cpu",
    "is_valid_quantity",
    "parse_quantity",
    "to_bytes",
]

#: The expression Kubernetes quotes in its error message (its own check is this plus suffix rules).
QUANTITY_REGEX = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"

_BINARY: dict[str, int] = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL: dict[str, int] = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_SUFFIX_ALTERNATIVES = "|".join(
    sorted((re.escape(s) for s in (*_BINARY, *_DECIMAL) if s), key=len, reverse=True)
)
_SYNTAX = re.compile(
    r"(?P<sign>[+-]?)(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    rf"(?:(?P<exp>[eE][+-]?[0-9]+)|(?P<suffix>{_SUFFIX_ALTERNATIVES}))?"
)
# Exact arithmetic: every operation is checked; an inexact or out-of-range one is an error
# (it also bounds the work a hostile "1e999999999" could cause).
_CONTEXT = decimal.Context(
    prec=200,
    Emax=400,
    Emin=-400,
    traps=[
        decimal.InvalidOperation,
        decimal.Overflow,
        decimal.Inexact,
        decimal.Subnormal,
        decimal.Underflow,
        decimal.DivisionByZero,
    ],
)
_ERROR = f"quantities must match the regular expression '{QUANTITY_REGEX}'"


def parse_quantity(value: str | int | float | Decimal) -> Decimal:
    """The exact value of a quantity (``"100m"`` → ``Decimal("0.1")``).

    Integers and finite floats are taken as plain numbers (floats through their shortest
    ``repr``). Raises :class:`ValueError` for anything Kubernetes would reject, and for values
    too large or too precise to be a resource amount (more than 200 significant digits, or
    magnitudes beyond 1e±400).
    """
    if isinstance(value, bool):
        raise ValueError(f"{_ERROR}: got boolean {value!r}")
    try:
        if isinstance(value, int):
            return _CONTEXT.plus(Decimal(value))
        if isinstance(value, float):
            return _finite(_CONTEXT.plus(Decimal(repr(value))), value)
        if isinstance(value, Decimal):
            return _finite(_CONTEXT.plus(value), value)
    except decimal.DecimalException as exc:
        raise ValueError(f"quantity {value!r} is out of range") from exc
    if not isinstance(value, str):
        raise ValueError(f"{_ERROR}: got {type(value).__name__} {value!r}")
    match = _SYNTAX.fullmatch(value)
    if match is None:
        raise ValueError(f"{_ERROR}: got {_show(value)}")
    sign, number, exp, suffix = match.group("sign", "number", "exp", "suffix")
    try:
        amount = Decimal(number)
        if exp is not None:
            amount = amount.scaleb(int(exp[1:]), _CONTEXT)
        elif suffix in _BINARY:
            amount = _CONTEXT.multiply(amount, Decimal(2 ** _BINARY[suffix]))
        else:
            amount = amount.scaleb(_DECIMAL[suffix or ""], _CONTEXT)
        amount = _CONTEXT.plus(amount)
    except (decimal.DecimalException, ValueError) as exc:
        raise ValueError(f"quantity {_show(value)} is out of range") from exc
    return -amount if sign == "-" else amount


def is_valid_quantity(value: object) -> bool:
    """Whether :func:`parse_quantity` accepts ``value``."""
    try:
        parse_quantity(value)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


def cpu_millis(value: str | int | float | Decimal) -> int:
    """Whole millicores, rounded up: ``"100m"`` → 100, ``"1"`` → 1000, ``"0.5"`` → 500."""
    return _ceil(parse_quantity(value).scaleb(3, _CONTEXT))


def to_bytes(value: str | int | float | Decimal) -> int:
    """Whole units (bytes for memory), rounded up: ``"1Ki"`` → 1024, ``"1.5k"`` → 1500."""
    return _ceil(parse_quantity(value))


def format_cpu(millis: int) -> str:
    """The canonical CPU string: ``250`` → ``"250m"``, ``2000`` → ``"2"``, ``0`` → ``"0"``."""
    millis = int(millis)
    if millis % 1000 == 0:
        return str(millis // 1000)
    return f"{millis}m"


def format_bytes(n: int) -> str:
    """The largest exact binary suffix: ``134217728`` → ``"128Mi"``, ``1000`` → ``"1000"``."""
    n = int(n)
    if n == 0:
        return "0"
    sign, magnitude = ("-", -n) if n < 0 else ("", n)
    for suffix, power in sorted(_BINARY.items(), key=lambda item: -item[1]):
        if magnitude % (1 << power) == 0:
            return f"{sign}{magnitude >> power}{suffix}"
    return f"{sign}{magnitude}"


def _ceil(amount: Decimal) -> int:
    try:
        return int(amount.to_integral_value(rounding=decimal.ROUND_CEILING, context=_CONTEXT))
    except decimal.DecimalException as exc:  # pragma: no cover - bounded by parse_quantity
        raise ValueError(f"quantity {amount} is out of range") from exc


def _show(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...")


def _finite(amount: Decimal, original: object) -> Decimal:
    if not amount.is_finite():
        raise ValueError(f"quantity {original!r} is not a finite number")
    return amount
