"""The anonymizer families a study compares, what each one is, and which registered
anonymizers belong to it: the one place these facts are written. Registering an anonymizer
that no family lists is an error (:mod:`trainables.models.anonymizers`); the config's family fields,
the dry run's blanks, the trials' names, the settings label and the records the analysis reads
(the ``anonymizer.family``, ``anonymizer.knobs`` and ``anonymizer.setting`` tags) all derive
from this table.

A leaf module: no torch, no other module of the project.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    """One family of anonymizers."""

    name: str
    help: str
    #: The registered anonymizers of this family.
    members: tuple[str, ...]
    #: The minimax game trains it: it needs the identity stage and the warm-started f_T and f_B.
    plays_game: bool
    #: It trains a part of its own once per study, in the identity stage (tubelet's scorer).
    fits: bool
    #: The config fields only this family reads. ``always``: shown for each of its trials;
    #: ``when_set``: shown only away from the field's neutral value (at it, the knob does nothing).
    always: tuple[str, ...] = ()
    when_set: tuple[str, ...] = ()
    #: A field whose values away from the neutral one record the trials as a family of their
    #: own, ``<name>-<value>`` (the feature-based penalty beside the pixel one, on one front).
    variant: str = ""

    @property
    def knobs(self) -> tuple[str, ...]:
        return (*self.always, *self.when_set)


#: Every family, in the order the report and the plots list them.
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "penalty",
            "a learned f_A, trained in the minimax game under the penalty max(0, RMS - B)",
            members=("unetpp", "unet", "unetpp_tiny", "unet_tiny"),
            plays_game=True,
            fits=False,
            always=("B", "lam"),
            when_set=("penalty_on",),
            variant="penalty_on",
        ),
        Family(
            "tubelet",
            "attention-driven tubelet pruning: a ViT scorer trained once, keep_ratio its knob",
            members=("tubelet_prune",),
            plays_game=False,
            fits=True,
            always=("keep_ratio",),
        ),
        Family(
            "minimize",
            "data minimisation: fixed breadth and depth reductions (the min_* fields; the "
            "downsampling and blur presets fix their own)",
            members=("minimize", "downsample2x", "downsample4x", "blur_weak", "blur_strong"),
            plays_game=False,
            fits=False,
            when_set=(
                "min_resolution",
                "min_frame_step",
                "min_crop",
                "min_bits",
                "min_grey",
                "min_blur",
            ),  # fmt: skip
        ),
        Family(
            "baseline",
            "fixed references with no knob: raw data and blackening",
            members=("identity", "blacken"),
            plays_game=False,
            fits=False,
        ),
    )
}


def knob_owners() -> dict[str, str]:
    """Each family field -> the family that alone reads it."""
    return {k: f.name for f in FAMILIES.values() for k in f.knobs}


def family_of(anonymizer: str) -> Family | None:
    """The family that lists ``anonymizer`` (None for a name no family lists)."""
    return next((f for f in FAMILIES.values() if anonymizer in f.members), None)
