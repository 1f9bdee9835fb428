"""Bad input gets a clear error before any training starts."""

import dataclasses
import json
import subprocess
import sys

import pytest

from trainables.catalog import validate
from trainables.config import ConfigError, TrialConfig, config_for, from_dict


def _err(**kw) -> str:
    with pytest.raises(ConfigError) as e:
        validate(dataclasses.replace(config_for("smoke"), **kw))
    return str(e.value)


def test_scales_are_valid():
    for scale in ("smoke", "default"):
        validate(config_for(scale))
    validate(
        config_for("paper", n_action_train=8, n_action_test=8, n_privacy_train=8, n_privacy_test=8)
    )


def test_synthetic_too_large_to_render_is_refused():
    assert "needs about" in _err(size=224, frames=16, n_action_train=9537)


@pytest.mark.parametrize(
    "kw, needle",
    [
        (dict(B=1.2), "--B must lie in [0, 1]"),
        (dict(B=-0.1), "--B must lie in [0, 1]"),
        (dict(lam=-1.0), "--lam must be >= 0"),
        (dict(anonymizer="unet3000"), "unknown anonymizer 'unet3000'; valid: blacken"),
        (dict(action_model="c3d"), "unknown action model 'c3d'"),
        (dict(eval_privacy_model="vit"), "unknown privacy model 'vit'"),
        (dict(dataset="kinetics"), "unknown dataset 'kinetics'"),
        (dict(size=8), "--size must be >= 16"),
        (dict(frames=1), "--frames must be >= 2"),
        (dict(positives="mixup"), "--positives must be one of augment, frames"),
        (dict(positives="frames", frame_gap=8, frames=8), "--frame-gap must be in [1, frames-1]"),
        (dict(batch_size=1), "--batch-size must be >= 2"),
        (dict(lr_anon=0.0), "--lr-anon must be > 0"),
    ],
)
def test_bad_values_are_named(kw, needle):
    assert needle in _err(**kw)


def test_several_errors_are_reported_together():
    msg = _err(B=2.0, lam=-1.0)
    assert "--B" in msg and "--lam" in msg


def test_unknown_scale_and_keys():
    with pytest.raises(ValueError, match="valid scales are: smoke, default, paper"):
        config_for("huge")
    with pytest.raises(ValueError, match="unknown config keys"):
        config_for("smoke", Bee=0.3)


def test_from_dict_converts_types_and_roundtrips():
    cfg = config_for("default", B=0.5, lam=0.7, seed=3)
    d = {k: str(v) for k, v in cfg.to_dict().items()}
    assert from_dict(d) == cfg
    assert isinstance(from_dict({"scale": "smoke", "B": "0.3"}).B, float)


def test_geometry_mismatch_is_caught_before_training(tiny_cfg):
    from trainables.data.load import load_data
    from trainables.models.build import build_models

    cfg = dataclasses.replace(tiny_cfg, size=36, anonymizer="unetpp_tiny")
    with pytest.raises(ConfigError, match="multiples of 8"):
        build_models(cfg, load_data(cfg))


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainables.run", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_rejects_bad_input_fast():
    r = _run_cli("--B", "1.5", "--anonymizer", "nope")
    assert r.returncode == 2
    assert "--B must lie in [0, 1]" in r.stderr and "unknown anonymizer 'nope'" in r.stderr
    assert "[identity]" not in r.stderr  # nothing trained


def test_cli_lists_registries_and_help():
    r = _run_cli("--list")
    assert r.returncode == 0 and "unetpp" in r.stdout and "i3d_r50" in r.stdout
    h = _run_cli("--help")
    assert "--B" in h.stdout and "--lam" in h.stdout and "--anon-encoder" in h.stdout
    assert set(json.dumps(TrialConfig().to_dict()))  # config is JSON-serialisable


def test_calibration_prints_the_cost_of_each_edit():
    r = subprocess.run(
        [sys.executable, "-m", "trainables.calibrate", "--scale", "smoke", "--n-action-test", "8",
         "--size", "32"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    for edit in ("flatten", "greyscale", "blur_sigma1", "blur_sigma2", "downsample2x",
                 "downsample4x", "blacken"):  # fmt: skip
        assert 0.0 < out[edit]["mean"] <= out[edit]["max"] <= 1.0, edit
    assert out["blur_sigma1"]["mean"] < out["blur_sigma2"]["mean"]
    assert out["downsample2x"]["mean"] < out["downsample4x"]["mean"]
    assert "| flatten |" in r.stdout and "allows erasing every clip" in r.stdout
    # The same edits in the feature-based penalty's space (the warm-started f_T's features).
    feats = out["features"]
    assert set(feats) == {k for k in out if k in feats} and "flatten" in feats
    for edit, cost in feats.items():
        assert 0.0 <= cost["mean"] <= cost["max"], edit
    assert feats["flatten"]["mean"] > feats["blur_sigma1"]["mean"]
    assert "mean feature distance" in r.stdout
