"""The columns of a trials DataFrame, as the study records them: one list each, for every
module of ``analysis``."""

from __future__ import annotations

#: What a trial scores with fresh target models (the objectives and their relative drops).
SCORES = ("top1", "cmap", "f1")
#: Every final metric a trial records.
METRICS = (*SCORES, "rms", "raw_top1", "raw_cmap", "raw_f1", "seconds")
#: The config columns a reader compares trials by (plots, hover, parallel coordinates).
COMPARED = ("B", "lam", "anonymizer", "anon_encoder", "action_model", "privacy_model", "seed")
#: Config columns the loader puts first.
CONFIG = (*COMPARED, "scale", "dataset")
#: Config columns that are numbers.
FLOAT_CONFIG = ("B", "lam")
