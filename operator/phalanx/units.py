"""Durations and quantities as Kubernetes users write them.

Part of the API layer (`phalanx.models`): the spec carries times such as ``30s`` or ``1h30m`` and sizes
such as ``10Gi``. These two value types parse that text once, at the edge, so that the planner can
compare a ``timedelta`` and a number of bytes instead of re-parsing strings. Each type also says how it
appears in the CRD's OpenAPI schema, so that the API server and the operator accept the same text.
"""

from __future__ import annotations

import functools
import math
import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Final

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

__all__ = ["Duration", "Quantity"]

_MICROSECONDS: Final = {"h": 3_600_000_000, "m": 60_000_000, "s": 1_000_000, "ms": 1_000}
_DURATION_PART: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|h|m|s)")


class Duration(timedelta):
    """A span of time in Go's duration syntax, as Kubernetes APIs write them: ``30s``, ``5m``, ``1h30m``.

    It is a ``timedelta`` (so ``now - since > grace`` just works; ``total_seconds()`` gives the float)
    that prints back in the same syntax.
    Units are ``h``, ``m``, ``s`` and ``ms``; each part may have a fraction (``1.5h``). Days are not a
    unit, as in Go and in Kubernetes' CEL ``duration()``: write ``168h`` for a week.
    """

    PATTERN: Final = r"^([0-9]+(\.[0-9]+)?(ms|h|m|s))+$"
    """The text the CRD accepts; the same grammar as :meth:`parse`."""

    MAX_LENGTH: Final = 32

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse Go duration text; raise ``ValueError`` with the accepted syntax when it is not one."""
        if len(text) > cls.MAX_LENGTH or re.fullmatch(cls.PATTERN, text) is None:
            raise ValueError(
                f"{text!r} is not a duration: write a number and a unit (h, m, s, ms), for example 30s, 5m or 1h30m"
            )
        parts = _DURATION_PART.findall(text)
        micros = sum((Decimal(number) * _MICROSECONDS[unit] for number, unit in parts), start=Decimal(0))
        return cls.of(timedelta(microseconds=int(micros.to_integral_value())))

    @classmethod
    def of(cls, span: timedelta) -> Duration:
        """The same span of time as a ``Duration`` (for building specs in Python)."""
        return cls(days=span.days, seconds=span.seconds, microseconds=span.microseconds)

    def __str__(self) -> str:
        """Shortest Go-style text: ``1h30m``, ``45s``, ``250ms``, ``0s``."""
        micros = self // timedelta(microseconds=1)
        if micros == 0:
            return "0s"
        if micros < _MICROSECONDS["s"]:
            return f"{_decimal_text(Decimal(micros) / _MICROSECONDS['ms'])}ms"
        hours, micros = divmod(micros, _MICROSECONDS["h"])
        minutes, micros = divmod(micros, _MICROSECONDS["m"])
        parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
        if micros:
            parts.append(f"{_decimal_text(Decimal(micros) / _MICROSECONDS['s'])}s")
        return "".join(parts)

    def __repr__(self) -> str:
        return f"Duration({str(self)!r})"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._coerce,
            serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="json-unless-none"),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "pattern": cls.PATTERN, "maxLength": cls.MAX_LENGTH}

    @classmethod
    def _coerce(cls, value: object) -> Duration:
        # The wire only ever carries text; a timedelta is accepted for specs built in Python.
        if isinstance(value, cls):
            return value
        if isinstance(value, timedelta):
            return cls.of(value)
        if isinstance(value, str):
            return cls.parse(value)
        raise ValueError(f"{value!r} is not a duration: write it as text, for example 30s, 5m or 1h30m")


def _decimal_text(number: Decimal) -> str:
    """``1.500`` -> ``1.5``, ``2.0`` -> ``2``: no exponent, no trailing zeros."""
    text = format(number.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


_SUFFIXES: Final[dict[str, Fraction]] = {
    "": Fraction(1),
    **{suffix: Fraction(1024**power) for power, suffix in enumerate(["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"], 1)},
    **{suffix: Fraction(1000**power) for power, suffix in enumerate(["k", "M", "G", "T", "P", "E"], 1)},
}


MAX_EXPONENT: Final = 30
"""The largest decimal exponent a quantity may carry (1e30 bytes is far beyond any disk; PATTERN
spells it out): computing ``10**99999999`` exactly for a hostile spec would take the operator minutes."""


@functools.total_ordering
class Quantity:
    """An amount of bytes as Kubernetes writes it: ``10Gi``, ``500M``, ``1.5Gi``, ``1e9`` or a plain integer.

    The text is kept as written (it is what the user applied and what goes back on the wire); equality
    and :attr:`bytes` use the value, so ``1Gi == 1024Mi``. The grammar is Kubernetes' own for
    non-negative quantities, without the milli suffix (a thousandth of a byte means nothing here).
    """

    PATTERN: Final = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[kMGTPE]|[eE][+-]?0*([12]?[0-9]|30))?$"
    """The text the CRD accepts; the same grammar as :meth:`parse`."""

    __slots__ = ("_text", "_value", "_written_as_int")

    def __init__(self, text: str | int) -> None:
        """Parse ``text``; raise ``ValueError`` with the accepted syntax when it is not a quantity."""
        self._text = str(text)
        self._written_as_int = isinstance(text, int)
        match = re.fullmatch(self.PATTERN, self._text) if not isinstance(text, bool) else None
        if match is None:
            raise ValueError(
                f"{text!r} is not a quantity: write a number and an optional suffix "
                "(Ki, Mi, Gi, Ti, Pi, Ei or k, M, G, T, P, E) or a decimal exponent (e9, E+3), "
                "for example 10Gi or 500M"
            )
        number, _, suffix, _ = match.groups()
        try:
            mantissa = Fraction(Decimal(number))
        except InvalidOperation as error:  # pragma: no cover - the pattern admits only numbers
            raise ValueError(f"{text!r} is not a quantity") from error
        # Look the suffix up before reading it as an exponent: ``E`` (exa) and ``Ei`` (exbi) start with
        # the exponent's letter too, and only ``e``/``E`` followed by digits is an exponent.
        suffix = suffix or ""
        if suffix in _SUFFIXES:
            self._value = mantissa * _SUFFIXES[suffix]
        else:
            self._value = mantissa * Fraction(10) ** int(suffix[1:])

    @property
    def bytes(self) -> int:
        """The amount in whole bytes, rounded up as Kubernetes rounds a quantity to an integer."""
        return math.ceil(self._value)

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"Quantity({self._text!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Quantity):
            return self._value == other._value
        return NotImplemented

    def __lt__(self, other: Quantity) -> bool:
        return self._value < other._value

    def __hash__(self) -> int:
        return hash(self._value)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._coerce,
            serialization=core_schema.plain_serializer_function_ser_schema(cls._to_wire, when_used="json-unless-none"),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # Kubernetes' own schema for quantities: an integer or a string (x-kubernetes-int-or-string).
        return {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": cls.PATTERN,
            "x-kubernetes-int-or-string": True,
        }

    @classmethod
    def _coerce(cls, value: object) -> Quantity:
        if isinstance(value, cls):
            return value
        if isinstance(value, str | int) and not isinstance(value, bool):
            return cls(value)
        raise ValueError(f"{value!r} is not a quantity: write it as text, for example 10Gi")

    def _to_wire(self) -> str | int:
        # An integer that the user wrote as an integer goes back as one, so a round trip is exact.
        return int(self._text) if self._written_as_int else self._text
