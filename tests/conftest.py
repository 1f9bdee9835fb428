"""Shared test fixtures: one tiny CPU config that every trial test builds on."""

from __future__ import annotations

import os

import pytest
import torch

# Tests share the machine's two cores; more threads than cores makes OpenMP spin.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

TINY = dict(
    size=32,
    frames=4,
    n_action_train=16,
    n_action_test=16,
    n_privacy_train=16,
    n_privacy_test=16,
    batch_size=4,
    privacy_batch_size=4,
    eval_batch_size=8,
    identity_epochs=1,
    pretrain_action_epochs=1,
    pretrain_privacy_epochs=1,
    minimax_epochs=1,
    eval_action_epochs=1,
    eval_privacy_epochs=1,
    max_steps_per_epoch=2,
    frame_gap=2,
)


@pytest.fixture
def tiny_cfg():
    from trainables.config import config_for

    return config_for("smoke", **TINY)
