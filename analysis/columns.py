"""The columns of a trials DataFrame, as the study records them: one list each, for every
module of ``analysis``."""

from __future__ import annotations

#: What a trial scores with fresh target models (the objectives and their relative drops).
SCORES = ("top1", "cmap", "f1")
#: Every final metric a trial records.
METRICS = (*SCORES, "rms", "raw_top1", "raw_cmap", "raw_f1", "seconds")
#: The init point's metrics (f_A before the game), on the trials whose game trained f_A.
INIT = ("init_top1", "init_cmap", "init_rms")
#: The config columns a reader compares trials by (plots, hover, parallel coordinates).
COMPARED = ("B", "lam", "anonymizer", "anon_encoder", "action_model", "privacy_model", "seed")
#: The knobs of the tubelet_prune and minimize families: they tell those configurations apart.
KNOBS = (
    "keep_ratio", "min_resolution", "min_frame_step", "min_crop", "min_bits", "min_grey",
    "min_blur",
)  # fmt: skip
#: Config columns the loader puts first.
CONFIG = (*COMPARED, "scale", "dataset")
#: Config columns that are numbers.
FLOAT_CONFIG = ("B", "lam", "keep_ratio", "min_resolution", "min_frame_step", "min_crop",
                "min_bits", "min_blur")  # fmt: skip
#: The anonymizer family of each trial (``penalty``, ``tubelet``, ``minimize``, ``baseline``).
FAMILY = "family"
#: The family fields that describe each trial, comma-separated, as the study records them
#: (its family's knobs that are set; the families and their knobs are the study's facts, read
#: here from the records only).
KNOBS_SET = "knobs"
#: A fixed family's knobs in words, as the study records them ('' for the game's family).
SETTING = "setting"
