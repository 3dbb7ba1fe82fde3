"""Kubernetes quantities parsed by lakeport's own parser (no kubernetes client import)."""

import subprocess
import sys
from decimal import Decimal

import pytest

from lakeport.quantities import cpu_cores, is_quantity, memory_bytes, parse_quantity


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("512Mi", Decimal(512 * 1024**2)),
        ("2Gi", Decimal(2 * 1024**3)),
        ("1.5G", Decimal(1_500_000_000)),
        ("500m", Decimal("0.5")),
        ("2", Decimal(2)),
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("1e-2", Decimal("0.01")),
        ("100k", Decimal(100_000)),
        ("3Ki", Decimal(3072)),
        (".5", Decimal("0.5")),
        ("1E", Decimal(1000**6)),  # a bare E is exa, not an exponent
        (2, Decimal(2)),
        (0.5, Decimal("0.5")),
    ],
)
def test_quantities_parse_to_their_exact_value(value, expected):
    assert is_quantity(value)
    assert parse_quantity(value) == expected


def test_memory_and_cpu_views():
    assert memory_bytes("512Mi") == 536_870_912
    assert memory_bytes("1.5G") == 1_500_000_000
    assert cpu_cores("500m") == 0.5
    assert cpu_cores("2") == 2.0
    assert cpu_cores(1) == 1.0


@pytest.mark.parametrize(
    "value", ["1.5GB", "-1", "", "abc", "1ki", "1Mb", "1 Gi", "e3", "1e", "Gi", "1.2.3", True, -2]
)
def test_bad_values_are_refused(value):
    assert not is_quantity(value)
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        parse_quantity(value)
    with pytest.raises(ValueError):
        memory_bytes(value)


def test_parsing_does_not_import_the_kubernetes_client():
    code = (
        "import sys; from lakeport.quantities import memory_bytes; memory_bytes('1Gi'); "
        "print('kubernetes' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
