"""What the benches that run trials share in their plans: the scale, the device and the trial
config overrides (``--set``), each a flag of every such bench."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainables.config import SCALES, help_field, parse_assignments


@dataclass(frozen=True)
class TrialPlan:
    """A bench's trials: at ``scale``, on ``device``, with the ``--set`` overrides."""

    scale: str = help_field("default", "trial scale of every trial", tuple(SCALES))
    device: str = help_field("auto", "auto, cpu or cuda[:N]")
    set: tuple[str, ...] = help_field((), "trial config override KEY=VALUE, e.g. --set size=32")

    @property
    def overrides(self) -> dict[str, Any]:
        """The trial config overrides, typed, with the device."""
        return {**parse_assignments(self.set), "device": self.device}
