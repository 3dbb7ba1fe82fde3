"""Kubernetes resource quantities (`512Mi`, `2`, `500m`) as numbers.

Parsing is the kubernetes client's own (`kubernetes.utils.parse_quantity`); this module
adds the syntax check the API server applies, so `1.5GB` or `-1` is rejected before it
reaches a cluster.
"""

import re
from decimal import Decimal

from kubernetes.utils import parse_quantity

# The canonical quantity grammar of k8s.io/apimachinery (resource.Quantity), unsigned.
_QUANTITY_RE = re.compile(
    r"^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$"
)


def is_quantity(value: str | float) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return value >= 0
    return bool(_QUANTITY_RE.match(value))


def quantity_value(value: str | float) -> Decimal:
    """The quantity as a number: bytes for memory and storage, cores for CPU."""
    if not is_quantity(value):
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    return parse_quantity(value)


def memory_bytes(value: str | float) -> int:
    return int(quantity_value(value))


def cpu_cores(value: str | float) -> float:
    return float(quantity_value(value))
