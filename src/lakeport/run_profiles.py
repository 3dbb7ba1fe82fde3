"""Which resource profile a run needs, from the assets it materialises.

A model's `meta.lakeport.profile` or its group's profile names what its runs need. One
pod runs all the models a run selects, so the run takes the largest profile any of them
asks for (the default profile for those that ask for none). The numbers themselves only
ever come from `lakeport.profiles.profile_tags`.
"""

from collections.abc import Iterable

from lakeport.platform import Platform
from lakeport.quantities import cpu_cores, memory_bytes


def largest_profile(platform: Platform, names: Iterable[str | None]) -> str:
    default = platform.dagster.run_launcher.default_profile
    candidates = {name or default for name in names} or {default}

    def size(name: str) -> tuple[int, float]:
        limits = platform.profile(name).limits
        return memory_bytes(limits.memory), cpu_cores(limits.cpu) if limits.cpu else 0.0

    return max(sorted(candidates), key=size)
