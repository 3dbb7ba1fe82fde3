"""`python -m lakeport.dev.cgroup_exec --cgroup DIR... -- PROGRAM ARGS...`

Joins the cgroups, then replaces itself with PROGRAM: the program is limited from its
first instruction, and its parent still waits on the same pid. (A `preexec_fn` would do
the same inside the parent's fork, but that is unsafe in the multi-threaded daemon.)
"""

import os
import sys
from pathlib import Path

from lakeport.dev.cgroups import CgroupUnavailable, join


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print("usage: cgroup_exec --cgroup DIR [--cgroup DIR ...] -- PROGRAM [ARGS...]",
              file=sys.stderr)
        return 2
    split = argv.index("--")
    options, program = argv[:split], argv[split + 1:]
    if not program or len(options) % 2 or any(o != "--cgroup" for o in options[::2]):
        print("cgroup_exec: expected --cgroup DIR pairs, then -- PROGRAM", file=sys.stderr)
        return 2
    try:
        for directory in options[1::2]:
            join(Path(directory))
    except CgroupUnavailable as exc:
        print(f"cgroup_exec: {exc}", file=sys.stderr)
        return 125
    os.execvp(program[0], program)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
