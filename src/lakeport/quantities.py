"""Kubernetes resource quantities (`512Mi`, `2`, `500m`) as numbers.

The grammar is the API server's (k8s.io/apimachinery resource.Quantity, unsigned): a
decimal number, then either a binary SI suffix (Ki Mi Gi Ti Pi Ei), a decimal SI suffix
(m k M G T P E) or a decimal exponent (`1e3`). `1.5GB` or `-1` is rejected before it
reaches a cluster.

Parsed here rather than with `kubernetes.utils.parse_quantity`: importing that pulls in
the whole kubernetes client (seconds on every code-server start) for a few lines.
"""

import re
from decimal import Decimal

# The canonical quantity grammar of k8s.io/apimachinery (resource.Quantity), unsigned.
_QUANTITY_RE = re.compile(
    r"^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$"
)
_NUMBER_SUFFIX_RE = re.compile(r"^(?P<number>(?:\d+(?:\.\d*)?|\.\d+))(?P<suffix>.*)$")
_MULTIPLIERS = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(1000),
    "M": Decimal(1000) ** 2,
    "G": Decimal(1000) ** 3,
    "T": Decimal(1000) ** 4,
    "P": Decimal(1000) ** 5,
    "E": Decimal(1000) ** 6,
    "Ki": Decimal(1024),
    "Mi": Decimal(1024) ** 2,
    "Gi": Decimal(1024) ** 3,
    "Ti": Decimal(1024) ** 4,
    "Pi": Decimal(1024) ** 5,
    "Ei": Decimal(1024) ** 6,
}


def is_quantity(value: str | float) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return value >= 0
    return bool(_QUANTITY_RE.match(value))


def parse_quantity(value: str | float) -> Decimal:
    """The exact value of a quantity; ValueError if it is not one."""
    if not is_quantity(value):
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    if isinstance(value, (int, float)):
        return Decimal(value)
    match = _NUMBER_SUFFIX_RE.match(value)
    number, suffix = Decimal(match["number"]), match["suffix"]
    if suffix in _MULTIPLIERS:
        return number * _MULTIPLIERS[suffix]
    # A decimal exponent: e3, E-2, e+6.
    return number.scaleb(int(suffix[1:]))


def quantity_value(value: str | float) -> Decimal:
    """The quantity as a number: bytes for memory and storage, cores for CPU."""
    return parse_quantity(value)


def memory_bytes(value: str | float) -> int:
    return int(quantity_value(value))


def cpu_cores(value: str | float) -> float:
    return float(quantity_value(value))
