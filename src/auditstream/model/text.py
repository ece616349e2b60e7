"""Text that is shown to people (a terminal, the console): what must not be in it.

C0 and C1 controls, DEL, and the bidirectional embeddings, overrides and isolates
("Trojan Source"): a line shown with them can rewrite itself or read in another order
than it is stored. Names auditstream stores for display refuse them; text it shows from
events escapes them (``clean``).
"""

from __future__ import annotations

import re
from typing import Any

UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean(value: Any) -> str:
    """``value`` as one line of inert text: each unsafe character becomes ``\\xNN`` /
    ``\\uNNNN``."""
    text = value if isinstance(value, str) else "" if value is None else str(value)
    return UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


__all__ = ["UNSAFE", "clean"]
