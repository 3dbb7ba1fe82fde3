"""Command-line tools the tests run, found where `make install` puts them."""

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def helm_binary() -> str:
    """The helm of `make install` (.tools/bin), else the machine's."""
    for candidate in (REPO / ".tools/bin/helm", shutil.which("helm")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise FileNotFoundError("helm not found: run `make install` (it puts helm in .tools/bin)")
