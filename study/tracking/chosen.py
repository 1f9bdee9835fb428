"""The anonymizer the report chose, logged as an MLflow model on its trial's run, so that
``mlflow.pytorch.load_model`` loads it and ``python -m trainables.anonymize`` applies it.

The model is a ``torch.export`` program (MLflow's "pt2" format: loading it runs no pickle) of
the frame-wise anonymizer: float32 frames (N, 3, H, W) in [0, 1] in, the same out, with N, H and
W dynamic (H and W multiples of its size multiple). Its anonymizer.pt and config.json ride along
as extra files."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from trainables.anonymize import load_anonymizer

#: The parent run's tags that name the choice.
CHOSEN_RUN_TAG = "study.chosen_run"
CHOSEN_MODEL_TAG = "study.chosen_model"


def log_chosen(c: Any, uri: str, parent: str, run_id: str) -> str:
    """Log ``run_id``'s anonymizer (from its anonymizer.pt and config.json) as the MLflow model
    ``anonymizer`` of that run; tag the parent run with the choice; return the model URI."""
    import mlflow
    import mlflow.pytorch
    import numpy as np
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    frames = Schema([TensorSpec(np.dtype("float32"), (-1, 3, -1, -1))])

    mlflow.set_tracking_uri(uri)
    with tempfile.TemporaryDirectory() as d:
        weights = Path(c.download_artifacts(run_id, "anonymizer.pt", d))
        config = Path(c.download_artifacts(run_id, "config.json", d))
        model = load_anonymizer(weights, config)
        side = 2 * max(model.size_multiple, 16)  # batch 2: a batch of 1 would fix N
        example = np.random.default_rng(0).random((2, 3, side, side), dtype=np.float32)
        before = c.get_run(run_id).info  # reopening the run must not change its record
        try:
            with mlflow.start_run(run_id=run_id):
                info = mlflow.pytorch.log_model(
                    model,
                    name="anonymizer",
                    serialization_format="pt2",
                    signature=ModelSignature(inputs=frames, outputs=frames),
                    input_example=example,
                    extra_files=[str(weights), str(config)],
                    pip_requirements=[f"torch=={_torch_version()}"],
                )
        finally:  # a model that fails to export leaves the trial FINISHED, not FAILED
            c.set_terminated(run_id, status=before.status, end_time=before.end_time)
    c.set_tag(parent, CHOSEN_RUN_TAG, run_id)
    c.set_tag(parent, CHOSEN_MODEL_TAG, info.model_uri)
    c.set_tag(run_id, "study.tracking.chosen", "true")
    return str(info.model_uri)


def _torch_version() -> str:
    import torch

    return torch.__version__.split("+")[0]
