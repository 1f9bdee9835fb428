"""Pretrained weights from local files: wrappings, prefixes, replaced heads, clear errors."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys

import pytest
import torch

from trainables.catalog import validate
from trainables.config import ConfigError
from trainables.models.action_models import build_action_model
from trainables.models.anonymizers import build_anonymizer
from trainables.models.privacy_models import build_privacy_model
from trainables.models.weights import WeightsError, load_weights
from trainables.trial import run_trial


def _quiet(msg: str) -> None:
    pass


def test_kinetics_style_checkpoint_loads_with_a_new_head(tmp_path):
    """A bare backbone state dict (no 'backbone.' prefix, 'module.' from DataParallel, a
    400-class head, nested under 'model_state') loads into a 7-class model."""
    k400 = build_action_model("i3d_r50_tiny", num_classes=400, frames=4, size=32)
    sd = {"module." + k.removeprefix("backbone."): v for k, v in k400.state_dict().items()}
    path = tmp_path / "k400.pt"
    torch.save({"model_state": sd, "epoch": 3}, path)
    model = build_action_model("i3d_r50_tiny", num_classes=7, frames=4, size=32)
    logs: list[str] = []
    load_weights(model, path, "f_T", logs.append)
    for k, v in model.state_dict().items():
        if v.shape == k400.state_dict()[k].shape:
            assert torch.equal(v, k400.state_dict()[k]), k
    assert "new head" in logs[0]
    assert model(torch.rand(2, 3, 4, 32, 32)).shape == (2, 7)


def test_simclr_and_anonymizer_checkpoints_round_trip(tmp_path):
    f_b = build_privacy_model("resnet10_tiny", head="simclr", num_outputs=128)
    torch.save(f_b.state_dict(), tmp_path / "simclr.pt")
    fresh = build_privacy_model("resnet10_tiny", head="simclr", num_outputs=128)
    load_weights(fresh, tmp_path / "simclr.pt", "f_B", _quiet)
    assert all(
        torch.equal(a, b)
        for a, b in zip(fresh.state_dict().values(), f_b.state_dict().values(), strict=True)
    )
    anon = build_anonymizer("unetpp_tiny", "mobilenet_v2")
    # An smp state dict without our 'net.' wrapper prefix.
    torch.save({k.removeprefix("net."): v for k, v in anon.state_dict().items()}, tmp_path / "a.pt")
    other = build_anonymizer("unetpp_tiny", "mobilenet_v2")
    load_weights(other, tmp_path / "a.pt", "f_A", _quiet)
    x = torch.rand(1, 3, 2, 32, 32)
    assert torch.equal(other(x), anon(x))


def test_weights_of_another_architecture_name_the_layers(tmp_path):
    x3d = build_action_model("x3d_tiny", num_classes=8, frames=4, size=32)
    torch.save(x3d.state_dict(), tmp_path / "x3d.pt")
    model = build_action_model("i3d_r50_tiny", num_classes=8, frames=4, size=32)
    with pytest.raises(WeightsError) as e:
        load_weights(model, tmp_path / "x3d.pt", "f_T (i3d_r50_tiny)", _quiet)
    msg = str(e.value)
    assert "do not fit the model" in msg and "backbone.blocks." in msg
    assert "checkpoint (" in msg or "not in the checkpoint" in msg
    # ResNet-18 weights lack ResNet-34's extra blocks.
    r18 = build_privacy_model("resnet18", head="simclr", num_outputs=128)
    torch.save(r18.state_dict(), tmp_path / "r18.pt")
    r34 = build_privacy_model("resnet34", head="simclr", num_outputs=128)
    with pytest.raises(
        WeightsError, match=r"backbone.layer1.2.conv1.weight: not in the checkpoint"
    ):
        load_weights(r34, tmp_path / "r18.pt", "f_B", _quiet)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": argparse.Namespace(a=1)}, path)
    model = build_privacy_model("resnet10_tiny", head="simclr", num_outputs=128)
    with pytest.raises(WeightsError, match="cannot be loaded safely"):
        load_weights(model, path, "f_B", _quiet)


def test_missing_weight_files_are_config_errors(tiny_cfg, tmp_path):
    cfg = dataclasses.replace(tiny_cfg, action_weights=str(tmp_path / "nope.pt"))
    with pytest.raises(ConfigError, match="--action-weights: .*nope.pt does not exist"):
        validate(cfg)


def test_a_trial_starts_from_local_weights(tiny_cfg, tmp_path):
    anon = build_anonymizer(tiny_cfg.anonymizer, tiny_cfg.anon_encoder)
    torch.save(anon.state_dict(), tmp_path / "anon.pt")
    f_t = build_action_model(tiny_cfg.action_model, num_classes=400, frames=4, size=32)
    torch.save(f_t.state_dict(), tmp_path / "k400.pt")
    cfg = dataclasses.replace(
        tiny_cfg, anon_weights=str(tmp_path / "anon.pt"), action_weights=str(tmp_path / "k400.pt")
    )
    logs: list[str] = []
    res = run_trial(cfg, log=logs.append)
    assert any("[identity] skipped" in m for m in logs)
    assert sum("[weights] f_T (" in m for m in logs) == 1
    # The fresh f_T' of the raw reference, of the init point and of the trial start from them too.
    assert sum("[weights] f_T' (" in m for m in logs) == 3
    assert 0 <= res.top1 <= 1


@pytest.mark.slow
def test_the_launcher_refuses_unfitting_weights_before_starting(tmp_path):
    x3d = build_action_model("x3d_tiny", num_classes=8, frames=4, size=32)
    torch.save(x3d.state_dict(), tmp_path / "x3d.pt")
    r = subprocess.run(
        [sys.executable, "-m", "study.launch", "--space", "smoke", "--scale", "smoke",
         "--study-dir", str(tmp_path / "s"), "--set", f"action_weights={tmp_path / 'x3d.pt'}",
         "--set", "action_model=i3d_r50_tiny"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 2 and "do not fit the model" in r.stderr
    assert not (tmp_path / "s" / "smoke" / "mlflow.db").exists()


def test_a_trial_recorded_before_anon_init_applies_as_the_plain_sigmoid_it_trained(tmp_path):
    import json

    from trainables.anonymize import load_anonymizer
    from trainables.config import config_for

    old = config_for("smoke").to_dict()
    del old["anon_init"]  # what a trial wrote before the field existed
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(config_for("smoke").to_dict()))
    for name, residual in (("old", False), ("new", True)):
        cfg = config_for("smoke", anon_init="residual" if residual else "l1")
        weights = tmp_path / f"{name}.pt"
        torch.save(build_anonymizer(cfg.anonymizer, cfg.anon_encoder, cfg).state_dict(), weights)
        anon = load_anonymizer(weights, tmp_path / f"{name}.json")
        assert anon.residual == residual
