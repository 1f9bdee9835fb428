"""Evaluation of a trained anonymizer with fresh target models (action Top-1, privacy cMAP and F1),
the metrics, and the pixel cost of the reference edits (calibration)."""
