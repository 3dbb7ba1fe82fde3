import sys
from pathlib import Path

# bench/ is a top-level folder of the repo, not part of the installed package.
REPO = str(Path(__file__).resolve().parents[2])
if REPO not in sys.path:
    sys.path.insert(0, REPO)
