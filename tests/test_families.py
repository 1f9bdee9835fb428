"""The anonymizer families: tubelet pruning, data minimisation, the families space and report."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from tests.study_helpers import launch_args, runs
from trainables.models import minimize as mz
from trainables.models.tubelet import (
    TubeletPrune,
    TubeletViT,
    expand_mask,
    keep_top,
    prune,
    tubelet_scores,
)


def _prune(keep_ratio: float, frames: int = 4, size: int = 8) -> TubeletPrune:
    vit = TubeletViT(frames, size, t=2, p=4, dim=8, depth=1, heads=2, num_classes=3)
    return TubeletPrune(vit, t=2, p=4, frames=frames, keep_ratio=keep_ratio).eval()


# --- tubelet pruning -----------------------------------------------------------------------


def test_tubelet_scores_contrast_the_action_and_privacy_tokens():
    attn = torch.zeros(1, 2, 5, 5)
    attn[0, :, 0, 2:] = torch.tensor([0.5, 0.3, 0.2])  # the action token's attention
    attn[0, :, 1, 2:] = torch.tensor([0.1, 0.6, 0.3])  # the privacy token's
    assert torch.allclose(tubelet_scores(attn), torch.tensor([[0.4, -0.3, -0.1]]))


def test_pruned_tubelets_are_those_with_the_lowest_scores(monkeypatch):
    anon = _prune(keep_ratio=0.5)  # 2 x 2 x 2 = 8 tubelets: keeps 4
    scores = torch.tensor([[5.0, -1.0, 3.0, 0.0, 7.0, -4.0, 2.0, 1.0]])
    monkeypatch.setattr(anon, "scores", lambda x: scores)
    x = torch.rand(1, 3, 4, 8, 8)
    with torch.no_grad():
        y = anon(x)
    fill = x.mean(dim=(2, 3, 4))
    cells = y.reshape(1, 3, 2, 2, 2, 4, 2, 4).permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(8, 3, -1)
    src = x.reshape(1, 3, 2, 2, 2, 4, 2, 4).permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(8, 3, -1)
    kept = [i for i in range(8) if torch.equal(cells[i], src[i])]
    pruned = [i for i in range(8) if torch.allclose(cells[i], fill[0].view(3, 1).expand(3, 32))]
    assert sorted(kept) == [0, 2, 4, 6]  # the 4 highest scores: 7, 5, 3, 2
    assert sorted(pruned) == [1, 3, 5, 7]  # the 4 lowest: -4, -1, 0, 1
    assert all(scores[0, p] < scores[0, k] for p in pruned for k in kept)


def test_keep_top_keeps_ceil_k_n_and_at_least_one():
    s = torch.arange(10.0).view(1, 10)
    assert keep_top(s, 0.25).sum() == 3 and keep_top(s, 0.25)[0, 7:].all()
    assert keep_top(s, 0.01).sum() == 1 and keep_top(s, 0.01)[0, 9]
    assert keep_top(s, 1.0).all()


def test_keep_ratio_one_reproduces_the_input():
    x = torch.rand(2, 3, 4, 8, 8)
    with torch.no_grad():
        assert torch.equal(_prune(1.0)(x), x)
        assert torch.equal(_prune(1.0)(x[:, :, 0]), x[:, :, 0])
    keep = expand_mask(keep_top(torch.randn(2, 8), 1.0), (2, 2, 2), (2, 4, 4))
    assert torch.equal(prune(x, keep), x)  # the pruning path with every tubelet kept


def test_tubelet_prune_takes_clips_and_frames_and_keeps_about_k():
    anon = _prune(keep_ratio=0.25)
    x = torch.rand(2, 3, 4, 8, 8)
    with torch.no_grad():
        y, yi = anon(x), anon(x[:, :, 0])
    assert y.shape == x.shape and yi.shape == x[:, :, 0].shape
    assert (y == x).float().mean().item() == pytest.approx(0.25, abs=0.02)
    assert (yi == x[:, :, 0]).float().mean().item() == pytest.approx(0.25, abs=0.02)
    with pytest.raises(ValueError, match="must tile"):
        TubeletViT(frames=3, size=8, t=2, p=4, dim=8, depth=1, heads=2, num_classes=3)


def test_tubelet_geometry_is_refused_before_any_work(tiny_cfg):
    import dataclasses

    from trainables.config import ConfigError
    from trainables.data.load import load_data
    from trainables.models.build import build_models

    cfg = dataclasses.replace(tiny_cfg, anonymizer="tubelet_prune", tubelet_frames=3)
    data = load_data(tiny_cfg, lambda m: None)
    with pytest.raises((ConfigError, ValueError), match="tubelet|frames"):
        build_models(cfg, data)


def test_the_scorer_trains_once_and_every_keep_ratio_reuses_it(tiny_cfg):
    """The scorer's fields are in the identity stage, keep_ratio in the game's: one shared
    stage serves every keep ratio; the fit learns (its losses are finite and recorded)."""
    import dataclasses

    from trainables.data.load import load_data
    from trainables.game.keys import init_key, result_key
    from trainables.stages import compute_shared
    from trainables.trial import run_trial

    cfgs = [
        dataclasses.replace(tiny_cfg, anonymizer="tubelet_prune", keep_ratio=k, tubelet_epochs=2)
        for k in (0.25, 1.0)
    ]
    assert init_key(cfgs[0]) == init_key(cfgs[1]) and result_key(cfgs[0]) != result_key(cfgs[1])
    data = load_data(cfgs[0], lambda m: None)
    shared = compute_shared(cfgs[0], data, lambda m: None)
    assert shared.init.anon is not None and len(shared.init.history["tubelet_ce"]) == 2
    assert all(math.isfinite(v) for v in shared.init.history["tubelet_ntxent"])
    full = run_trial(cfgs[1], data=data, shared=shared, log=lambda m: None)
    assert full.rms == pytest.approx(0.0, abs=1e-6)  # keep_ratio 1: the input, unchanged
    pruned = run_trial(cfgs[0], data=data, shared=shared, log=lambda m: None)
    assert pruned.rms > 0.01


# --- data minimisation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "op",
    [
        lambda x: mz.resolution(x, 0.25),
        lambda x: mz.bit_depth(x, 2),
        lambda x: mz.greyscale(x),
        lambda x: mz.blur(x, 1 / 16),
        lambda x: mz.motion_crop(x, 0.5),
    ],
    ids=["resolution", "bits", "grey", "blur", "crop"],
)
def test_each_frame_operator_keeps_shape_and_range(op):
    x = torch.rand(3, 3, 16, 16)
    y = op(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1 and not torch.equal(y, x)


def test_clip_operators_keep_shape_and_range():
    x = torch.rand(2, 3, 8, 16, 16)
    for y in (
        mz.frame_step(x, 2),
        mz.motion_crop(x, 0.5),
        mz.MinimizeOps(0.5, 2, 0.5, 3, True, 0.05)(x),
    ):
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1


def test_operators_do_what_they_say():
    x = torch.rand(2, 3, 8, 16, 16)
    held = mz.frame_step(x, 4)
    assert torch.equal(held[:, :, 1], x[:, :, 0]) and torch.equal(held[:, :, 5], x[:, :, 4])
    assert len(torch.unique(mz.bit_depth(x, 2))) <= 4
    g = mz.greyscale(x)
    assert torch.equal(g[:, 0], g[:, 1]) and torch.equal(g[:, 1], g[:, 2])
    f = x[:, :, 0]
    pooled = F.interpolate(F.avg_pool2d(f, 2), size=(16, 16), mode="bilinear", align_corners=False)
    assert torch.allclose(mz.resolution(f, 0.5), pooled, atol=1e-6)
    flat = torch.full((1, 3, 16, 16), 0.3)
    assert torch.allclose(mz.blur(flat, 0.1), flat, atol=1e-6)
    # The crop keeps the window around what moves: a square drifting in one corner.
    clip = torch.zeros(1, 3, 4, 16, 16)
    for t in range(4):
        clip[0, :, t, 10 + t % 2 : 14 + t % 2, 10:14] = 1.0
    keep = mz.crop_window(clip, 0.5)
    assert keep.sum() == 64 and keep[0, 11, 11] and not keep[0, 2, 2]
    out = mz.motion_crop(clip, 0.5)
    assert torch.equal(out[0, :, :, 11, 11], clip[0, :, :, 11, 11])
    assert torch.allclose(out[0, :, :, 0, 0], clip.mean(dim=(2, 3, 4))[0].view(3, 1))
    # The defaults change nothing.
    assert torch.equal(mz.MinimizeOps()(x), x) and mz.MinimizeOps().describe() == "none"


def test_bad_operator_values_are_refused():
    with pytest.raises(ValueError, match="bits must lie in"):
        mz.MinimizeOps(bits=0)
    with pytest.raises(ValueError, match="resolution must lie in"):
        mz.MinimizeOps(resolution=0.0)
    from trainables.catalog import validate
    from trainables.config import ConfigError, config_for

    with pytest.raises(ConfigError, match="--min-bits"):
        validate(config_for("smoke", anonymizer="minimize", min_bits=9))
    with pytest.raises(ConfigError, match="--keep-ratio"):
        validate(config_for("smoke", anonymizer="tubelet_prune", keep_ratio=0.0))


def test_the_downsampling_and_blur_baselines_are_minimize_presets():
    from trainables.config import config_for
    from trainables.models.anonymizers import Minimize, build_anonymizer, family

    x = torch.rand(2, 3, 4, 32, 32)
    for name, field, value in (
        ("downsample2x", "min_resolution", 0.5),
        ("downsample4x", "min_resolution", 0.25),
        ("blur_weak", "min_blur", 1 / 56),
        ("blur_strong", "min_blur", 1 / 16),
    ):
        preset = build_anonymizer(name)
        assert isinstance(preset, Minimize) and family(name) == "minimize"
        cfg = config_for("smoke", anonymizer="minimize", **{field: value})
        assert torch.equal(preset(x), build_anonymizer("minimize", cfg=cfg)(x)), name


# --- keys, spaces, plan ---------------------------------------------------------------------


def test_fields_at_their_neutral_value_or_of_another_anonymizer_leave_keys_unchanged():
    import dataclasses

    from trainables.config import config_for, neutral_fields, read_when_fields
    from trainables.game.keys import _hash, init_key, key_fields, result_key, stage_key

    neutral = {**neutral_fields(), **read_when_fields()}
    assert {"min_bits", "min_grey"} <= set(neutral)
    cfg = config_for("default", B=0.1)
    names = [n for n in key_fields("warm") if n not in neutral]
    assert init_key(cfg) == _hash({n: getattr(cfg, n) for n in names})
    assert stage_key(cfg, "warm") == init_key(cfg)
    # A minimize knob moves the result key of the minimize anonymizer only: no other reads it.
    assert result_key(dataclasses.replace(cfg, min_bits=4)) == result_key(cfg)
    mini = dataclasses.replace(cfg, anonymizer="minimize")
    moved = dataclasses.replace(mini, min_bits=4)
    assert result_key(moved) != result_key(mini) and init_key(moved) == init_key(mini)
    tubelet = dataclasses.replace(cfg, anonymizer="tubelet_prune")
    scorer = dataclasses.replace(tubelet, vit_dim=64)  # an identity-stage field moves that key
    assert init_key(scorer) != init_key(tubelet)
    assert init_key(dataclasses.replace(cfg, vit_dim=64)) == init_key(cfg)  # not the penalty's
    # The L1 stage's epochs move the key of an L1-initialised f_A only: a residual one skips it.
    l1 = dataclasses.replace(cfg, anon_init="l1")
    assert init_key(dataclasses.replace(l1, identity_epochs=3)) != init_key(l1)
    assert init_key(dataclasses.replace(cfg, identity_epochs=3)) == init_key(cfg)


def test_a_familys_knob_does_not_change_its_cost_key():
    from study.timings import cost_key
    from trainables.config import config_for

    def key(**kw):
        return cost_key(config_for("default", **kw))

    assert key(anonymizer="tubelet_prune", keep_ratio=0.25) == key(
        anonymizer="tubelet_prune", keep_ratio=0.9
    )
    assert key(anonymizer="minimize", min_bits=2) == key(anonymizer="minimize", min_grey=True)
    assert key(anonymizer="tubelet_prune") != key(anonymizer="tubelet_prune", vit_dim=96)


def _family_name_uses() -> list[str]:
    """Each place in the packages where a family's name is written as a string, other than
    trainables/families.py and the keys of a table keyed by family (data about a family, such
    as its measured seconds; their keys are checked)."""
    import ast
    from pathlib import Path

    from trainables.families import FAMILIES

    names = set(FAMILIES) - {"minimize"}  # also an anonymizer's name and an Optuna direction
    root = Path(__file__).resolve().parents[1]
    found = []
    for pkg in ("study", "trainables", "analysis", "search_spaces"):
        for path in sorted((root / pkg).rglob("*.py")):
            if path.name == "families.py" and pkg == "trainables":
                continue
            tree = ast.parse(path.read_text())
            allowed: set[int] = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.Dict):
                    for k in node.keys:
                        if isinstance(k, ast.Constant) and k.value in FAMILIES:
                            allowed.add(id(k))
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Constant)
                    and node.value in names
                    and id(node) not in allowed
                ):
                    found.append(f"{path.relative_to(root)}:{node.lineno}: {node.value!r}")
    return found


def test_no_family_fact_is_written_by_hand():
    """The families, which anonymizer belongs to which, and which config field to which, are
    written in trainables/families.py alone; the registry, the config, the search spaces, the
    study and the analysis derive them (the analysis from the records)."""
    from study.timings import FAMILY_SECONDS
    from trainables.config import FAMILY_FIELDS
    from trainables.families import FAMILIES, knob_owners
    from trainables.models.anonymizers import ANONYMIZERS, family

    assert _family_name_uses() == []
    assert knob_owners() == FAMILY_FIELDS
    assert {family(n) for n in ANONYMIZERS.names()} == set(FAMILIES)
    members = [m for f in FAMILIES.values() for m in f.members]
    assert sorted(members) == ANONYMIZERS.names()  # each registered once, in one family
    for table in FAMILY_SECONDS.values():
        assert set(table) <= set(FAMILIES)


def test_the_trial_records_say_which_family_fields_describe_it():
    from trainables.config import config_for
    from trainables.models.anonymizers import setting, shown_knobs

    def cfg(**kw):
        return config_for("smoke", **kw)

    assert shown_knobs(cfg()) == ["B", "lam"] and setting(cfg()) == ""
    feat = cfg(penalty_on="action_features")
    assert shown_knobs(feat) == ["B", "lam", "penalty_on"]
    assert setting(feat) == "penalty_on = action_features"  # B and λ have their own columns
    assert shown_knobs(cfg(anonymizer="tubelet_prune", keep_ratio=0.25)) == ["keep_ratio"]
    assert setting(cfg(anonymizer="tubelet_prune", keep_ratio=0.25)) == "keep_ratio = 0.25"
    m = cfg(anonymizer="minimize", min_bits=2, min_grey=True)
    assert shown_knobs(m) == ["min_bits", "min_grey"]
    assert setting(m) == "min_bits = 2, min_grey = True"
    # A preset fixes its own operators, and a fixed anonymizer reads no knob of the game's.
    assert shown_knobs(cfg(anonymizer="downsample2x", min_bits=2)) == []
    assert shown_knobs(cfg(anonymizer="identity", B=0.3)) == []


def test_fixed_anonymizers_share_one_empty_init_stage():
    from trainables.config import config_for
    from trainables.game.keys import NO_INIT, init_key

    keys = {
        init_key(config_for("smoke", anonymizer=a)) for a in ("identity", "blacken", "minimize")
    }
    assert keys == {NO_INIT}
    assert init_key(config_for("smoke")) != NO_INIT
    assert init_key(config_for("smoke", anonymizer="tubelet_prune")) != NO_INIT


# --- analysis --------------------------------------------------------------------------------


def _family_configs() -> pd.DataFrame:
    rows = [
        ("penalty", 0.90, 0.70), ("penalty", 0.80, 0.55), ("penalty", 0.60, 0.50),
        ("tubelet", 0.85, 0.72), ("tubelet", 0.50, 0.40), ("tubelet", 0.30, 0.38),
        ("minimize", 0.95, 0.80), ("minimize", 0.40, 0.60), ("minimize", 0.20, 0.45),
        ("baseline", 1.00, 0.85), ("baseline", 0.10, 0.30),
    ]  # fmt: skip
    df = pd.DataFrame(rows, columns=["family", "top1", "cmap"])
    df["anonymizer"] = df["family"]
    df["B"] = np.arange(len(df)) / 10
    df["lam"] = 1.0
    return df


def test_family_summaries_fronts_and_owners():
    from analysis.families import front_owners, stretches, summarise
    from analysis.pareto import FIXED_REFERENCE, hypervolume, pareto_front

    configs = _family_configs()
    configs["on_front"] = pareto_front(configs)
    out = {s.family: s for s in summarise(configs, FIXED_REFERENCE, raw_cmap=0.84)}
    assert list(out) == ["penalty", "tubelet", "minimize", "baseline"]
    pen = out["penalty"]
    assert pen.front == [0, 1, 2] and pen.configurations == 3
    assert pen.hypervolume == pytest.approx(
        hypervolume(configs.loc[[0, 1, 2]], reference=FIXED_REFERENCE)
    )
    assert pen.best_top1_private == pytest.approx(0.80)  # cMAP <= 0.69: 0.55 and 0.50
    assert out["minimize"].best_top1_private == pytest.approx(0.40)
    assert pen.ideal in pen.front and pen.topsis in pen.front
    owners = front_owners(configs)
    assert owners["top1"].is_monotonic_decreasing
    runs_ = stretches(owners)
    assert runs_[0][0] == "baseline" and {f for f, _, _ in runs_} <= set(out)
    assert sum(s.on_overall_front for s in out.values()) == int(configs["on_front"].sum())
    none = summarise(configs, FIXED_REFERENCE, raw_cmap=0.40)
    assert math.isnan(next(s for s in none if s.family == "penalty").best_top1_private)


def test_the_report_draws_every_family_and_filters_one(tmp_path):
    from analysis.render import summary_markdown, write_report
    from analysis.summary import analyse, only_family

    trials = _family_configs().assign(seed=0, run_id=[f"r{i}" for i in range(11)],
                                      raw_top1=1.0, raw_cmap=0.85, raw_f1=0.6, f1=0.5, rms=0.1)  # fmt: skip
    data = analyse(trials)
    assert [s.family for s in data.families] == ["penalty", "tubelet", "minimize", "baseline"]
    paths = write_report(trials, tmp_path, "families", png=False, data=data)
    assert (tmp_path / "families.html").is_file() and tmp_path / "report.html" in paths
    md = summary_markdown(data, "families")
    assert "## Anonymizer families" in md and "The overall front" in md
    stretch = [line for line in md.splitlines() if line.startswith("- ") and "Top-1" in line]
    assert stretch and not any(re.search(r"Top-1 (\S+) to \1$", line) for line in stretch)
    html = (tmp_path / "report.html").read_text()
    assert 'id="families"' in html and "tubelet front" in html
    one = only_family(trials, "tubelet")
    assert set(one["family"]) == {"tubelet"} and analyse(one).families == []
    with pytest.raises(ValueError, match="--family penalty.*no trial|its families"):
        only_family(trials[trials["family"] != "penalty"], "penalty")


# --- a families study, end to end -------------------------------------------------------------


@pytest.mark.heavy
def test_a_smoke_families_study_runs_every_family_end_to_end(tmp_path):
    """The real families space (19 trials: Ray, a real MLflow server) on tiny smoke settings;
    then the report with every family, and with one."""
    args = launch_args(tmp_path / "studies", "--set", "tubelet_epochs=1", space="families")
    r = subprocess.run(args, capture_output=True, text=True, timeout=1200, env=dict(os.environ))
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    root = tmp_path / "studies" / "families"
    _, children = runs(root)
    assert len(children) == 19 and all(c.info.status == "FINISHED" for c in children)
    fams = pd.Series([c.data.tags["anonymizer.family"] for c in children]).value_counts()
    assert fams.to_dict() == {"minimize": 9, "penalty": 4, "tubelet": 4, "baseline": 2}
    tub = [c for c in children if c.data.params["anonymizer"] == "tubelet_prune"]
    assert len({c.data.params["keep_ratio"] for c in tub}) == 4
    # Each trial records the family fields that describe it, and the analysis reads them.
    knobs = {c.data.tags["anonymizer.family"]: c.data.tags["anonymizer.knobs"] for c in children}
    assert knobs["penalty"] == "B,lam" and knobs["tubelet"] == "keep_ratio"
    assert knobs["baseline"] == ""
    report = (root / "report" / "summary.md").read_text()
    assert "## Anonymizer families" in report and "keep_ratio = 0.25" in report
    r = subprocess.run(
        [sys.executable, "-m", "analysis.report", "--experiment", "families", "--study-dir",
         str(tmp_path / "studies"), "--family", "tubelet", "--no-png"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    one = pd.read_csv(root / "report-tubelet" / "trials.csv")
    assert set(one["family"]) == {"tubelet"} and len(one) == 4


def test_the_feature_based_penalty_is_a_family_of_its_own_on_one_front(tmp_path):
    """penalty_on=action_features records its trials as ``penalty-action_features``; the
    penalty_spaces space sweeps B under both penalties with lambda = 0 once; the report draws
    a curve against B for each, with the calibration's pixel costs on the pixel one only."""
    from analysis.render import write_report
    from analysis.summary import analyse
    from search_spaces import BINDING_LAM, PENALTY_SPACE_BS, get_space
    from trainables.config import config_for
    from trainables.models.anonymizers import shown_knobs, trial_family

    pixels, feats = config_for("smoke"), config_for("smoke", penalty_on="action_features")
    assert (trial_family(pixels), trial_family(feats)) == ("penalty", "penalty-action_features")
    assert "penalty_on" in shown_knobs(feats) and "penalty_on" not in shown_knobs(pixels)
    assert trial_family(config_for("smoke", anonymizer="blacken")) == "baseline"
    combos = get_space("penalty_spaces").combinations()
    assert len(combos) == 2 * len(PENALTY_SPACE_BS) + 1
    assert sum(c.get("penalty_on") == "action_features" for c in combos) == len(PENALTY_SPACE_BS)
    assert [c for c in combos if c["lam"] == 0] == [{"B": 0.1, "lam": 0.0}]

    rows = []
    for i, b in enumerate(PENALTY_SPACE_BS):
        rows.append(dict(family="penalty", knobs="B,lam", B=b, lam=BINDING_LAM,
                         top1=1.0 - 0.1 * i, cmap=0.9 - 0.1 * i))  # fmt: skip
        rows.append(dict(family="penalty-action_features", knobs="B,lam,penalty_on", B=b,
                         lam=BINDING_LAM, penalty_on="action_features", top1=1.0 - 0.05 * i,
                         cmap=0.9 - 0.12 * i))  # fmt: skip
    trials = pd.DataFrame(rows).assign(
        seed=0, run_id=[f"r{i}" for i in range(len(rows))], raw_top1=1.0, raw_cmap=0.9,
        raw_f1=0.6, f1=0.5, rms=0.1,
    )  # fmt: skip
    data = analyse(trials)
    assert sorted(s.family for s in data.families) == ["penalty", "penalty-action_features"]
    curves = {c.family: c for c in data.b_curves}
    assert set(curves) == {"penalty", "penalty-action_features"}
    assert curves["penalty"].pixels and not curves["penalty-action_features"].pixels
    assert len(curves["penalty-action_features"].trials) == len(PENALTY_SPACE_BS)
    write_report(trials, tmp_path, "spaces", png=False, data=data, references={"blacken": 0.5},
                 feature_references={"blacken": 0.8})  # fmt: skip
    assert (tmp_path / "metrics_vs_B_penalty.html").is_file()
    assert (tmp_path / "metrics_vs_B_penalty-action_features.html").is_file()
