"""The benchmarks live in ``bench/`` at the repository root, beside ``src/``: put the root on
``sys.path`` so the tests of the harness import it as ``make bench`` runs it
(``python -m bench.run`` from the root)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
