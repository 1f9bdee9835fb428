"""The one type of the progress printers that every stage, bench and supervisor takes, and the
one ending of a command that refuses its input."""

from __future__ import annotations

import sys
from collections.abc import Callable

#: Where a stage writes its progress lines (``print`` by default; a trial's log in a study).
Log = Callable[[str], None]

#: The exit status of a command refused for bad input (argparse's own).
USAGE_ERROR = 2


def usage_error(e: BaseException) -> int:
    """The one ending of a command that refuses its input: the reason on stderr, status 2."""
    print(f"error: {e}", file=sys.stderr)
    return USAGE_ERROR
