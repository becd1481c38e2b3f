"""Makes ``lpn_arc`` (applications/arc) and ``latentsearch`` importable for these tests."""

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
for _path in (_ROOT, _ROOT / "applications" / "arc"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
