"""End-to-end trials on tiny inputs, through the real models and training code."""

import dataclasses
import json
import subprocess
import sys
from unittest import mock

import pytest
import torch

from tests.conftest import TINY
from trainables.config import config_for
from trainables.game.device import NonFiniteLossError
from trainables.stages import compute_shared
from trainables.trial import run_trial

KEYS = ("top1", "cmap", "f1", "rms", "raw_top1", "raw_cmap", "raw_f1")


def test_tiny_trial_returns_fractions_and_history(tiny_cfg):
    epochs = []
    res = run_trial(tiny_cfg, on_epoch=lambda e, m, snap: epochs.append((e, m)), log=lambda m: None)
    for k in KEYS:
        assert 0.0 <= getattr(res, k) <= 1.0, k
    assert res.rms > 0  # a learned anonymizer changes its input
    assert [e for e, _ in epochs] == [1] and "L_penalty" in epochs[0][1]
    assert res.config["B"] == tiny_cfg.B and res.seed == tiny_cfg.seed


def test_trials_reuse_shared_stages_and_are_seeded(tiny_cfg):
    from trainables.data.load import load_data

    data = load_data(tiny_cfg)
    shared = compute_shared(tiny_cfg, data, log=lambda m: None)
    a = run_trial(tiny_cfg, data=data, shared=shared, log=lambda m: None)
    b = run_trial(tiny_cfg, data=data, shared=shared, log=lambda m: None)
    assert a.summary() | {"seconds": 0} == b.summary() | {"seconds": 0}
    other = dataclasses.replace(tiny_cfg, B=0.0, lam=5.0)
    c = run_trial(other, data=data, shared=shared, log=lambda m: None)
    assert c.raw_top1 == a.raw_top1 and c.raw_cmap == a.raw_cmap
    with pytest.raises(ValueError, match="another data/backbone"):
        run_trial(dataclasses.replace(tiny_cfg, size=64), data=data, shared=shared)


def test_trials_with_an_inert_penalty_compute_the_same_result(tiny_cfg):
    """lambda = 0 at any B, and B = 1 at any lambda, give bit-identical trials: the premise of
    study.reuse, which shares one result between them."""
    from trainables.data.load import load_data
    from trainables.game.keys import penalty_is_inert, result_key

    data = load_data(tiny_cfg)
    shared = compute_shared(tiny_cfg, data, log=lambda m: None)
    cfgs = [
        dataclasses.replace(tiny_cfg, B=0.0, lam=0.0),
        dataclasses.replace(tiny_cfg, B=1.0, lam=5.0),
    ]
    assert all(penalty_is_inert(c) for c in cfgs)
    assert result_key(cfgs[0]) == result_key(cfgs[1])
    a, b = (run_trial(c, data=data, shared=shared, log=lambda m: None) for c in cfgs)
    assert a.summary() | {"seconds": 0} == b.summary() | {"seconds": 0}

    # Same curves, but for the L_penalty diagnostic, which is measured against each one's B.
    def strip(history):
        return [{k: v for k, v in r.items() if k not in ("seconds", "L_penalty")} for r in history]

    assert strip(a.history) == strip(b.history)
    assert a.history[0]["L_penalty"] > 0 and b.history[0]["L_penalty"] == 0
    # An active penalty is a different trial.
    active = dataclasses.replace(tiny_cfg, B=0.0, lam=5.0)
    assert not penalty_is_inert(active) and result_key(active) != result_key(cfgs[0])


def _full_and_resumed(cfg, tmp_path):
    """A trial run through, and the same trial resumed from its epoch-1 checkpoint."""
    from trainables.data.load import load_data

    data = load_data(cfg)
    shared = compute_shared(cfg, data, log=lambda m: None)
    snaps = {}

    def keep(epoch, metrics, snapshot):
        torch.save(snapshot(), tmp_path / f"epoch{epoch}.pt")
        snaps[epoch] = tmp_path / f"epoch{epoch}.pt"

    full = run_trial(cfg, data=data, shared=shared, on_epoch=keep, log=lambda m: None)
    state = torch.load(snaps[1], weights_only=True)  # checkpoints load without pickle
    resumed = run_trial(cfg, data=data, shared=shared, resume=state, log=lambda m: None)
    return full, resumed, data, shared


def test_resume_from_a_snapshot_gives_the_uninterrupted_result(tiny_cfg, tmp_path):
    full, resumed, _, _ = _full_and_resumed(
        dataclasses.replace(tiny_cfg, minimax_epochs=2), tmp_path
    )
    assert len(resumed.history) == 2
    assert resumed.summary() | {"seconds": 0} == full.summary() | {"seconds": 0}


def test_the_feature_penalty_bounds_f_a_against_the_warm_started_f_t(tiny_cfg, tmp_path):
    """penalty_on=action_features: the hinge is on phi's relative distance, phi the warm
    started f_T frozen for the game (a resumed game rebuilds the same phi, so it gives the
    uninterrupted result), and the trial reports that distance on its test clips."""
    cfg = dataclasses.replace(
        tiny_cfg, minimax_epochs=2, penalty_on="action_features", B=0.01, lam=10.0
    )
    full, resumed, data, shared = _full_and_resumed(cfg, tmp_path)
    assert 0.0 < full.feature_distance < 10.0 and "feature_distance" in full.summary()
    assert full.history[0]["L_penalty"] > 0  # B = 0.01: the hinge is active
    assert resumed.summary() | {"seconds": 0} == full.summary() | {"seconds": 0}
    pixels = run_trial(
        dataclasses.replace(cfg, penalty_on="pixels"), data=data, shared=shared, log=lambda m: None
    )
    assert "feature_distance" not in pixels.summary()
    assert pixels.history[0]["L_penalty"] != full.history[0]["L_penalty"]


def test_the_feature_penalty_needs_its_reference():
    from trainables.game.device import runtime
    from trainables.game.train import GameViews, penalty_term

    x = torch.rand(2, 3, 4, 8, 8)
    g = GameViews(x, x, x, torch.zeros(2, dtype=torch.long), x[:, :, 0], x[:, :, 1])
    cfg = config_for("smoke", penalty_on="action_features")
    with pytest.raises(ValueError, match="penalty_reference"):
        penalty_term(g, cfg, None, runtime("cpu", False, 0))
    assert penalty_term(g, config_for("smoke"), None, runtime("cpu", False, 0)).item() == 0.0


@pytest.mark.parametrize("anonymizer", ["blur_strong", "blacken"])
def test_fixed_anonymizer_trial_skips_training(tiny_cfg, anonymizer):
    logs: list[str] = []
    res = run_trial(dataclasses.replace(tiny_cfg, anonymizer=anonymizer), log=logs.append)
    assert res.history == [] and res.rms > 0
    assert not any(m.startswith("[identity]") for m in logs)


def test_same_dataset_protocol_and_frame_positives(tiny_cfg):
    cfg = dataclasses.replace(tiny_cfg, dataset="synthetic-vp", positives="frames")
    res = run_trial(cfg, log=lambda m: None)
    assert 0 <= res.cmap <= 1


def test_nan_loss_stops_the_trial_naming_loss_and_step(tiny_cfg):
    with (
        mock.patch("trainables.game.losses.nt_xent", return_value=torch.tensor(float("nan"))),
        pytest.raises(NonFiniteLossError, match=r"loss L_B became nan in .* epoch 1 step 0"),
    ):
        run_trial(tiny_cfg, log=lambda m: None)


def test_paper_scale_builds_and_steps_on_tiny_inputs():
    """The paper's models (UNet++ resnet18, I3D R50, ResNet-50) through one step of each stage."""
    cfg = config_for(
        "paper",
        size=64,
        frames=4,
        n_action_train=4,
        n_action_test=4,
        n_privacy_train=4,
        n_privacy_test=4,
        batch_size=2,
        privacy_batch_size=2,
        eval_batch_size=2,
        identity_epochs=1,
        pretrain_action_epochs=1,
        pretrain_privacy_epochs=1,
        minimax_epochs=1,
        eval_action_epochs=1,
        eval_privacy_epochs=1,
        max_steps_per_epoch=1,
        device="cpu",
    )
    assert (cfg.anonymizer, cfg.action_model, cfg.privacy_model) == (
        "unetpp",
        "i3d_r50",
        "resnet50",
    )
    res = run_trial(cfg, log=lambda m: None)
    assert len(res.history) == 1 and torch.isfinite(torch.tensor(res.history[0]["L_A"]))


@pytest.mark.slow
def test_smoke_command_prints_json_last():
    # The smoke scale with its epochs and sets cut to the tiny ones (as flags, through the CLI).
    tiny = [a for k, v in TINY.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainables.run",
            "--scale",
            "smoke",
            "--B",
            "0.3",
            "--lam",
            "1.0",
            *tiny,
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    last = json.loads(r.stdout.strip().splitlines()[-1])
    for k in KEYS:
        assert 0.0 <= last[k] <= 1.0
    assert last["seconds"] > 0 and "[minimax] epoch" in r.stderr


def test_gpu_staging_moves_pixels_only_and_keeps_shared_sets_shared(tiny_cfg):
    """What ``stage_data`` does on CUDA, checked on the meta device: pixels move, labels,
    attributes and video ids stay on the host (the metrics read them there), and a set that
    serves two roles is still one object."""
    from trainables.data.load import load_data
    from trainables.game.device import place_pixels

    data = load_data(dataclasses.replace(tiny_cfg, dataset="synthetic-vp"), log=lambda m: None)
    data.eval_action = (data.action_train, data.action_test)
    data.eval_privacy = (data.action_train, data.action_test)
    placed = place_pixels(data, torch.device("meta"))
    for s in (placed.action_train, placed.action_test):
        assert isinstance(s.clips, torch.Tensor) and s.masks is not None
        assert s.clips.is_meta and s.masks.is_meta
        assert not s.labels.is_meta and not s.attributes.is_meta
    assert placed.privacy_train.images.is_meta and not placed.privacy_train.attributes.is_meta
    assert placed.eval_action is not None and placed.eval_privacy is not None
    assert placed.eval_action[0] is placed.action_train is placed.eval_privacy[0]
    assert isinstance(data.action_train.clips, torch.Tensor)
    assert not data.action_train.clips.is_meta  # the original is untouched


def test_the_raw_reference_and_an_identity_trial_are_scored_by_the_same_targets(tiny_cfg):
    """Evaluation is seeded by eval_seed alone: the identity anonymizer, evaluated inside a
    trial with another model seed, reproduces the raw reference exactly (a paired comparison)."""
    from trainables.data.load import load_data

    cfg = dataclasses.replace(tiny_cfg, anonymizer="identity", seed=7)
    data = load_data(cfg)
    shared = compute_shared(cfg, data, log=lambda m: None)
    res = run_trial(cfg, data=data, shared=shared, log=lambda m: None)
    assert (res.top1, res.cmap, res.f1) == (res.raw_top1, res.raw_cmap, res.raw_f1)
    assert res.summary()["eval_seed"] == cfg.eval_seed
    other = dataclasses.replace(cfg, eval_seed=1)
    moved = run_trial(other, data=data, shared=compute_shared(other, data, log=lambda m: None))
    assert (moved.top1, moved.cmap) != (res.top1, res.cmap)


@pytest.mark.parametrize("norm", ["frozen", "batch"])
def test_minimax_runs_batch_norm_as_configured(tiny_cfg, norm):
    """Step 1 trains f_A against f_T and f_B in eval mode; step 2 trains f_T and f_B against
    f_A in eval mode (the released code). f_A's own batch norm is frozen in step 1 too unless
    anon_batch_norm is 'batch', and a frozen one's statistics never move."""
    import dataclasses

    from trainables.data.load import load_data
    from trainables.game.device import runtime
    from trainables.game.train import make_minimax_optimizers, minimax_step
    from trainables.models.build import build_models

    cfg = dataclasses.replace(tiny_cfg, anon_batch_norm=norm)
    data = load_data(cfg)
    anon, f_t, f_b = build_models(cfg, data)
    calls: list[tuple[str, bool]] = []
    for name, m in (("f_A", anon), ("f_T", f_t), ("f_B", f_b)):
        m.register_forward_pre_hook(lambda mod, args, name=name: calls.append((name, mod.training)))
    stats = {k: v.clone() for k, v in anon.state_dict().items() if "running" in k}
    rt = runtime("cpu", False, 0)
    x = torch.rand(4, 3, cfg.frames, 32, 32)
    v = torch.rand(4, 3, 32, 32)
    opts = make_minimax_optimizers(anon, f_t, f_b, cfg)
    minimax_step(anon, f_t, f_b, x, torch.zeros(4, dtype=torch.long), v, None, cfg, rt, opts)
    # Step 2 starts where f_A runs again after step 1 has scored its outputs with f_B.
    first_b = next(i for i, (n, _) in enumerate(calls) if n == "f_B")
    step2 = next(i for i, (n, _) in enumerate(calls) if n == "f_A" and i > first_b)
    step1, rest = calls[:step2], calls[step2:]
    assert {n for n, _ in step1} == {"f_A", "f_T", "f_B"}
    assert all(training == (n == "f_A" and norm == "batch") for n, training in step1)
    assert {n for n, _ in rest} == {"f_A", "f_T", "f_B"}
    assert all(training == (n != "f_A") for n, training in rest)
    moved = any(not torch.equal(stats[k], anon.state_dict()[k]) for k in stats)
    assert moved == (norm == "batch")


@pytest.mark.parametrize("clip", [0.0, 1e-3])
def test_f_a_steps_with_its_beta2_and_clipped_gradient(tiny_cfg, clip):
    """f_A's Adam uses anon_beta2; with anon_grad_clip its gradient norm is at most the clip
    when the optimiser steps (the large-lambda penalty's spikes are what it caps)."""
    from trainables.data.load import load_data
    from trainables.game.device import runtime
    from trainables.game.train import make_minimax_optimizers, minimax_step
    from trainables.models.build import build_models

    cfg = dataclasses.replace(tiny_cfg, anon_beta2=0.99, anon_grad_clip=clip, B=0.0, lam=100.0)
    anon, f_t, f_b = build_models(cfg, load_data(cfg))
    opts = make_minimax_optimizers(anon, f_t, f_b, cfg)
    assert opts["anon"].param_groups[0]["betas"] == (0.9, 0.99)
    assert opts["action"].param_groups[0]["betas"] == (0.9, 0.999)
    rt = runtime("cpu", False, 0)
    x, v = torch.rand(4, 3, cfg.frames, 32, 32), torch.rand(4, 3, 32, 32)
    minimax_step(anon, f_t, f_b, x, torch.zeros(4, dtype=torch.long), v, None, cfg, rt, opts)
    grads = [p.grad for p in anon.parameters() if p.grad is not None]
    norm = torch.sqrt(torch.stack([(g.float() ** 2).sum() for g in grads]).sum()).item()
    if clip:
        assert norm <= clip * 1.001
    else:
        assert norm > 1e-3  # unclipped, the same step's gradient is larger than the clip


def test_cross_model_evaluation_scores_one_anonymizer_with_each_fresh_model(tiny_cfg):
    """f_A* is trained once and scored by every listed f_T' and f_B', each seeded like the
    first; the first model's scores stay the trial's top1/cmap/f1, the same as without the
    extra models; the raw reference has the same per-model keys."""
    from trainables.data.load import load_data

    data = load_data(tiny_cfg, lambda m: None)
    plain = run_trial(tiny_cfg, data=data, log=lambda m: None)
    cfg = dataclasses.replace(
        tiny_cfg, eval_action_models="x3d_tiny", eval_privacy_models="resnet10_tiny, resnet8_full"
    )
    logs: list[str] = []
    res = run_trial(cfg, data=data, log=logs.append)
    first_a, first_p = tiny_cfg.target_action_model, tiny_cfg.target_privacy_model
    assert cfg.action_eval_models == [first_a, "x3d_tiny"]
    assert cfg.privacy_eval_models == [first_p, "resnet10_tiny"]  # the first is not repeated
    assert (res.top1, res.cmap, res.f1) == (plain.top1, plain.cmap, plain.f1)
    assert (res.raw_top1, res.raw_cmap) == (plain.raw_top1, plain.raw_cmap)
    assert plain.models == {} and plain.raw_models == {}
    m = res.models
    assert m[f"top1/{first_a}"] == res.top1 and m[f"cmap/{first_p}"] == res.cmap
    top1s = [m[f"top1/{first_a}"], m["top1/x3d_tiny"]]
    cmaps = [m[f"cmap/{first_p}"], m["cmap/resnet10_tiny"]]
    assert m["top1/mean"] == pytest.approx(sum(top1s) / 2) and m["top1/worst"] == min(top1s)
    assert m["cmap/mean"] == pytest.approx(sum(cmaps) / 2) and m["cmap/worst"] == max(cmaps)
    assert set(res.raw_models) == set(m) and f"f1/{first_p}" in m
    assert all(0.0 <= v <= 1.0 for v in [*m.values(), *res.raw_models.values()])
    assert "raw_top1/x3d_tiny" in res.summary()
    # One game: the minimax epochs ran once.
    assert sum(line.startswith("[minimax] epoch 1/") for line in logs) == 1


def test_cross_model_lists_are_validated(tiny_cfg):
    from trainables.catalog import validate

    with pytest.raises(ValueError, match="--eval-action-models: unknown action model 'r4d'"):
        validate(dataclasses.replace(tiny_cfg, eval_action_models="x3d_tiny,r4d"))


def test_a_fresh_privacy_model_is_also_evaluated_from_local_weights(tiny_cfg, tmp_path):
    """eval_privacy_weights adds <model>_pretrained beside the model from random weights: its
    file loaded with weights_only=True (the SimCLR head left out, the multi-label head new)."""
    from trainables.catalog import validate
    from trainables.data.load import load_data
    from trainables.models.privacy_models import build_privacy_model

    path = tmp_path / "r10.pt"
    torch.save(
        build_privacy_model("resnet10_tiny", head="simclr", num_outputs=128).state_dict(), path
    )
    cfg = dataclasses.replace(
        tiny_cfg, eval_privacy_models="resnet10_tiny", eval_privacy_weights=f"resnet10_tiny={path}"
    )
    validate(cfg)
    assert cfg.privacy_eval_models == [tiny_cfg.target_privacy_model, "resnet10_tiny",
                                       "resnet10_tiny_pretrained"]  # fmt: skip
    logs: list[str] = []
    res = run_trial(cfg, data=load_data(cfg, lambda m: None), log=logs.append)
    assert {"cmap/resnet10_tiny", "cmap/resnet10_tiny_pretrained"} <= set(res.models)
    assert "raw_cmap/resnet10_tiny_pretrained" in res.summary()
    assert any("f_B' (resnet10_tiny_pretrained)" in line and str(path) in line for line in logs)
    for bad, msg in [
        (f"resnet50={path}", "resnet50 is not a fresh f_B' of this trial"),
        ("resnet10_tiny=/nonexistent.pt", "/nonexistent.pt does not exist"),
        ("resnet10_tiny", "'resnet10_tiny' is not MODEL=PATH"),
    ]:
        with pytest.raises(ValueError, match=msg):
            validate(dataclasses.replace(cfg, eval_privacy_weights=bad))
