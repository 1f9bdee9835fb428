"""The data a trial reads: the built-in synthetic benchmark, the real datasets and their paper
protocols (:mod:`.datasets`), the in-memory clip and image sets, and the augmentations.

``python -m trainables.data --dataset NAME --root DIR`` checks a dataset folder before a study reads it."""
