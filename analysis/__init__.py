"""Analysis of a study: the Pareto front, hypervolume, relative drops and rankings."""

from analysis.pareto import default_reference, hypervolume, hypervolume_curve, pareto_front
from analysis.ranking import (
    Choice,
    rank_ideal_distance,
    rank_topsis,
    relative_drops,
    replicate_summary,
)

__all__ = [
    "Choice",
    "default_reference",
    "hypervolume",
    "hypervolume_curve",
    "pareto_front",
    "rank_ideal_distance",
    "rank_topsis",
    "relative_drops",
    "replicate_summary",
]
