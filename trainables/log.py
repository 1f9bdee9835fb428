"""The one type of the progress printers that every stage, bench and supervisor takes."""

from __future__ import annotations

from collections.abc import Callable

#: Where a stage writes its progress lines (``print`` by default; a trial's log in a study).
Log = Callable[[str], None]
