"""Polling until something is true: the one wait helper of the tests."""

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class NotYet:
    """What a check returns while it is not done: false, and why, for the timeout message."""

    why: object

    def __bool__(self) -> bool:
        return False


def wait_for(check, *, what: str, timeout: float, interval: float = 1.0, ignore=()):
    """Call `check` every `interval` seconds until it returns a true value, and return that
    value. After `timeout` seconds fail with an AssertionError naming `what` was awaited
    (and the last NotYet's reason). Exceptions of the `ignore` types count as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except ignore:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            why = f": {value.why}" if isinstance(value, NotYet) else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{why}")
        time.sleep(interval)
