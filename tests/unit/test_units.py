"""Quantities as Kubernetes writes them: every suffix, exponents and fractions, checked against Kubernetes' client."""

from __future__ import annotations

import math
import re
from decimal import Decimal, Inexact, localcontext

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from kubernetes.utils.quantity import parse_quantity

from phalanx.models import StorageSpec
from phalanx.units import MAX_EXPONENT, Quantity

BINARY = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
DECIMAL = ["k", "M", "G", "T", "P", "E"]

_digits = st.text("0123456789", min_size=1, max_size=20)


@st.composite
def quantity_texts(draw: st.DrawFn) -> str:
    """Non-negative quantities in Kubernetes' grammar (without the milli suffix), from 0 to far past 8Ei."""
    whole, fraction = draw(_digits), draw(_digits)
    number = draw(st.sampled_from([whole, f"{whole}.", f"{whole}.{fraction}", f".{fraction}"]))
    exponent = st.tuples(
        st.sampled_from("eE"),
        st.sampled_from(["", "+", "-"]),
        st.integers(0, MAX_EXPONENT).map(str),
        st.sampled_from(["", "0"]),
    ).map(lambda parts: f"{parts[0]}{parts[1]}{parts[3]}{parts[2]}")
    suffix = draw(st.one_of(st.just(""), st.sampled_from(BINARY + DECIMAL), exponent))
    return f"{number}{suffix}"


def kubernetes_value(text: str) -> Decimal:
    """Kubernetes' client's reading of ``text``, exact: a context wide enough that nothing is rounded."""
    with localcontext() as context:
        context.prec = 200
        context.traps[Inexact] = True
        value = parse_quantity(text)  # type: ignore[no-untyped-call]  # the client's function has no annotations
        assert isinstance(value, Decimal)
        return value


@pytest.mark.parametrize(
    ("written", "size"),
    [
        ("1Ei", 2**60),
        ("8Ei", 2**63),
        ("2Pi", 2 * 2**50),
        ("1E", 10**18),
        ("1P", 10**15),
        ("1e18", 10**18),
        ("1E18", 10**18),
        ("1e+3", 1000),
        ("1E-3", 1),  # a thousandth of a byte, rounded up to a whole byte
        ("1.5Ei", 3 * 2**59),
        (".5Gi", 2**29),
        ("1.", 1),
        ("1.5e3", 1500),
    ],
)
def test_every_suffix_and_exponent_gives_the_bytes_kubernetes_means(written: str, size: int) -> None:
    quantity = Quantity(written)
    assert quantity.bytes == size
    assert str(quantity) == written


@pytest.mark.parametrize("written", ["1Eb", "Ei", "-1Gi", "1.2.3", "1e", "1Ki2", "1ki", "1K", "1Eie3", "1e1.5", "."])
def test_other_text_is_refused_with_the_accepted_syntax(written: str) -> None:
    with pytest.raises(ValueError, match="for example 10Gi") as raised:
        Quantity(written)
    for suffix in [*BINARY, *DECIMAL]:
        assert re.search(rf"\b{suffix}\b", str(raised.value)), f"the message does not list {suffix}"


def test_a_volume_of_an_exbibyte_is_a_valid_storage_size() -> None:
    storage = StorageSpec.model_validate({"size": "1Ei"})
    assert storage.size.bytes == 2**60
    assert storage.size == Quantity("1024Pi") == Quantity("1152921504606846976")
    assert storage.to_wire()["size"] == "1Ei"


@given(quantity_texts())
@example("1Ei")
@example("8Ei")
@example("1E")
@example("1e18")
@example("1.5Ei")
@example("0.000001Ei")
@example("99999999999999999999.99999999999999999999Ei")
@example("1.e-30")
def test_quantity_agrees_with_kubernetes_client(text: str) -> None:
    expected = kubernetes_value(text)
    quantity = Quantity(text)
    assert quantity.bytes == math.ceil(expected)
    # The exact value, fractions of a byte included: the same amount written out in plain digits.
    assert quantity == Quantity(format(expected, "f"))


@given(quantity_texts(), quantity_texts())
def test_quantities_order_as_kubernetes_values_do(left: str, right: str) -> None:
    assert (Quantity(left) < Quantity(right)) == (kubernetes_value(left) < kubernetes_value(right))
    assert (Quantity(left) == Quantity(right)) == (kubernetes_value(left) == kubernetes_value(right))


@given(st.text("0123456789.eEiKkMGTPE+-b ", max_size=8))
@example("1Ei")
@example("1E")
@example("1Eb")
def test_the_crd_pattern_and_the_parser_accept_the_same_text(text: str) -> None:
    """Anything the CRD lets through parses; anything else is refused with the syntax, never a stray error."""
    if re.fullmatch(Quantity.PATTERN, text):
        Quantity(text)
    else:
        with pytest.raises(ValueError, match="for example 10Gi"):
            Quantity(text)


def test_an_exponent_no_volume_needs_is_refused_at_once() -> None:
    """``1e99999999`` matches the grammar, but computing it exactly took the operator minutes."""
    with pytest.raises(ValueError, match="exponent"):
        Quantity("1e99999999")
    assert Quantity("1e30").bytes == 10**30
