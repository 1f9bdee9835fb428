"""A recommendation that survives seed noise: configurations pooled over seeds, their front and
ranking, what cannot be told apart, a fixed hypervolume reference, and warnings when the
evidence is void."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis import hypervolume
from analysis.recommend import (
    configurations,
    indistinguishable,
    penalty_warnings,
    recommend,
    sanity_warnings,
)
from analysis.render import summary_markdown
from analysis.summary import analyse
from trainables.evaluation.metrics import chance_cmap, chance_top1


def _runs(points: dict[tuple[float, float], list[tuple[float, float]]]) -> pd.DataFrame:
    """(B, lam) -> [(top1, cmap) per seed] as trial rows."""
    rows = []
    for (b, lam), seeds in points.items():
        for s, (top1, cmap) in enumerate(seeds):
            rows.append({
                "run_id": f"r{b}-{lam}-{s}", "B": b, "lam": lam, "seed": s,
                "anonymizer": "unetpp_tiny", "top1": top1, "cmap": cmap, "f1": 0.5,
                "rms": b, "raw_top1": 0.95, "raw_cmap": 0.9, "raw_f1": 0.8,
            })  # fmt: skip
    return pd.DataFrame(rows)


def test_configurations_pool_the_seeds():
    df = _runs({(0.1, 1.0): [(0.8, 0.5), (0.6, 0.7), (0.7, 0.6)], (0.2, 1.0): [(0.5, 0.4)]})
    c = configurations(df).set_index("B")
    assert c.loc[0.1, "n"] == 3 and c.loc[0.2, "n"] == 1
    assert c.loc[0.1, "top1"] == pytest.approx(0.7)
    assert c.loc[0.1, "top1_std"] == pytest.approx(0.1)
    assert pd.isna(c.loc[0.2, "top1_std"])
    assert c.loc[0.1, "run_id"] == "r0.1-1.0-2"  # the seed closest to the mean
    assert c.loc[0.1, "run_ids"].split() == ["r0.1-1.0-0", "r0.1-1.0-1", "r0.1-1.0-2"]


def test_one_lucky_seed_does_not_win():
    # Config A: one excellent seed and two poor ones; B: steady and better on average.
    df = _runs({
        (0.1, 1.0): [(0.95, 0.30), (0.50, 0.85), (0.55, 0.80)],
        (0.2, 1.0): [(0.85, 0.45), (0.84, 0.46), (0.86, 0.44)],
    })  # fmt: skip
    per_trial = recommend(df.assign(n=1))  # what a ranking of single trials picks
    assert df.loc[per_trial.chosen.index, "B"] == 0.1
    configs = configurations(df)
    rec = recommend(configs)
    assert configs.loc[rec.chosen.index, "B"] == 0.2


def test_overlapping_configurations_are_named_not_distinguishable():
    df = _runs({
        (0.1, 1.0): [(0.80, 0.50), (0.84, 0.54), (0.82, 0.52)],
        (0.2, 1.0): [(0.79, 0.51), (0.83, 0.55), (0.81, 0.53)],  # overlaps 0.1
        (0.3, 1.0): [(0.40, 0.20), (0.42, 0.21), (0.41, 0.22)],  # far from both
    })  # fmt: skip
    configs = configurations(df)
    rec = recommend(configs)
    chosen_b = configs.loc[rec.chosen.index, "B"]
    named = set(configs.loc[rec.indistinct, "B"])
    assert chosen_b in (0.1, 0.2) and named == {0.1, 0.2} - {chosen_b}
    assert indistinguishable(configs, int(configs.index[configs["B"] == 0.3][0])) == []
    md = summary_markdown(analyse(df), "t")
    assert "**Not distinguishable** from the chosen one" in md
    assert "B = 0.3" not in md.split("Not distinguishable")[1].split("\n")[0]


def test_one_seed_says_the_spread_is_unknown():
    md = summary_markdown(analyse(_runs({(0.1, 1.0): [(0.8, 0.5)], (0.2, 1.0): [(0.6, 0.3)]})), "t")
    assert "spread over seeds is unknown" in md and "--seeds 3" in md


def test_hypervolume_reference_is_fixed_so_studies_compare():
    df = pd.DataFrame({"top1": [0.8], "cmap": [0.4]})
    worse = pd.concat([df, pd.DataFrame({"top1": [0.2], "cmap": [0.95]})])
    assert hypervolume(df) == pytest.approx(0.8 * 0.6)
    assert hypervolume(worse) == pytest.approx(hypervolume(df))  # a bad trial adds nothing
    data = analyse(_runs({(0.1, 1.0): [(0.8, 0.4)]}), reference={"top1": 0.5, "cmap": 0.5})
    assert data.hypervolume == pytest.approx(0.3 * 0.1)


def test_sanity_warnings_when_the_evidence_is_void():
    healthy = _runs({(0.1, 1.0): [(0.8, 0.5)], (0.2, 1.0): [(0.6, 0.3)]})
    assert sanity_warnings(healthy, {"top1": 0.25, "cmap": 0.3}) == []
    w = sanity_warnings(healthy.assign(raw_top1=0.28), {"top1": 0.25})
    assert len(w) == 1 and "within 0.05 of chance" in w[0]
    w = sanity_warnings(healthy.assign(raw_cmap=0.33), {"cmap": 0.3})
    assert len(w) == 1 and "prevalence" in w[0]
    same = _runs({(0.1, 1.0): [(0.8, 0.5)], (0.2, 1.0): [(0.8, 0.5)]})
    w = sanity_warnings(same, {})
    assert len(w) == 1 and "All 2 trials score the same" in w[0]
    md = summary_markdown(analyse(same, chance={"top1": 0.25, "cmap": 0.3}), "t")
    assert md.index("## Warnings") < md.index("## Recommendation")


def test_the_report_says_when_the_penalty_did_not_bind():
    held = _runs({(0.1, 10.0): [(0.9, 0.7)], (0.2, 10.0): [(0.8, 0.6)], (0.1, 0.0): [(0.5, 0.4)]})
    held.loc[held["lam"] == 0.0, "rms"] = 0.6  # lambda = 0 is unbounded by design: no warning
    assert penalty_warnings(held) == []
    md = summary_markdown(analyse(held), "t")
    assert "did not" not in md and "changed nothing" not in md

    # Every sample above B from the first step: B = 0 and B = 0.05 compute the same trial.
    same = _runs(
        {(0.0, 1.0): [(0.95, 0.85)], (0.05, 1.0): [(0.95, 0.85)], (0.3, 1.0): [(0.9, 0.8)]}
    )
    same["rms"] = 0.25
    w = penalty_warnings(same)
    assert len(w) == 2
    assert "differ only in B (0, 0.05) gave identical results" in w[0]
    assert "2 of 3 penalised trials" in w[1] and "by up to 0.250" in w[1]
    data = analyse(same)
    assert all(x in data.warnings for x in w)
    md = summary_markdown(data, "t")
    assert md.index("The penalty did not bind") < md.index("## Recommendation")
    chosen = data.configs.loc[data.rec.chosen.index]
    assert float(chosen["B"]) in (0.0, 0.05)  # the front's best, though its bound never held
    assert "**Its bound did not hold**" in md


def test_the_report_shows_the_init_point_beside_the_raw_reference(tmp_path):
    from analysis.render import write_report

    df = _runs({(0.1, 10.0): [(0.9, 0.7), (0.92, 0.72)], (0.2, 10.0): [(0.8, 0.6), (0.82, 0.6)]})
    assert analyse(df).init is None
    df = df.assign(init_top1=0.95, init_cmap=0.9, init_rms=0.0002)
    data = analyse(df)
    assert data.init == pytest.approx((0.95, 0.9, 0.0002))
    md = summary_markdown(data, "t")
    assert "Init point (f_A before the game): Top-1 0.9500, cMAP 0.9000, RMS 0.0002" in md
    assert md.index("Raw data") < md.index("Init point") < md.index("## Recommendation")
    write_report(df, tmp_path, "t", png=False, data=data)
    page = (tmp_path / "report.html").read_text()
    assert 'id="init-point"' in page and "init point (f_A before the game)" in page


def test_chance_levels():
    import torch

    assert chance_top1(torch.tensor([0, 0, 0, 1])) == pytest.approx(0.75)
    targets = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]])
    assert chance_cmap(targets) == pytest.approx((0.5 + 0.25) / 2)  # the empty column is out


def test_two_studies_under_one_experiment_name_never_mix(tmp_path, capsys):
    """Reports key on the study's parent run (MLflow's own SQLite store, written directly)."""
    from mlflow.tracking import MlflowClient

    from analysis.report import report_from_mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = MlflowClient(uri)
    exp = c.create_experiment("shared_name")
    parents = []
    for study, top1 in (("first", 0.9), ("second", 0.5)):
        p = c.create_run(exp, run_name=study, tags={"study.role": "parent"}).info.run_id
        c.log_metric(p, "chance/top1", 0.1)
        for b in (0.1, 0.2):
            r = c.create_run(exp, tags={"study.role": "trial", "mlflow.parentRunId": p}).info
            for k, v in {"B": b, "lam": 1.0, "seed": 0, "anonymizer": "unetpp_tiny"}.items():
                c.log_param(r.run_id, k, v)
            for k, v in {"top1": top1 - b, "cmap": 0.5 + b, "f1": 0.5, "rms": b,
                         "raw_top1": 0.95, "raw_cmap": 0.9, "raw_f1": 0.8}.items():  # fmt: skip
                c.log_metric(r.run_id, k, v)
            c.set_terminated(r.run_id)
        c.set_terminated(p)
        parents.append(p)
    _, parent, data = report_from_mlflow("shared_name", uri, tmp_path / "newest", png=False)
    assert parent == parents[1] and len(data.trials) == 2
    assert data.trials["top1"].max() == pytest.approx(0.4)
    assert f"covers {parents[1]} only" in capsys.readouterr().err
    _, parent, data = report_from_mlflow(
        "shared_name", uri, tmp_path / "first", png=False, parent=parents[0]
    )
    assert parent == parents[0] and data.trials["top1"].max() == pytest.approx(0.8)
    assert parents[0] in (tmp_path / "first" / "summary.md").read_text()
    with pytest.raises(ValueError, match="not a study parent run"):
        report_from_mlflow("shared_name", uri, tmp_path / "x", png=False, parent="f" * 32)


def test_the_feature_based_penalty_is_held_to_its_feature_distance_and_named_in_the_table():
    """Under penalty_on = action_features B bounds the feature distance, not the RMS: an RMS
    above B is no warning there, a feature distance above it is; the configurations table
    says which penalty each row has, even for records without the setting tag."""
    runs = _runs({(0.1, 10.0): [(0.9, 0.7)], (0.2, 10.0): [(0.8, 0.6)]})
    runs["rms"] = 0.3
    runs["penalty_on"] = "action_features"
    runs["feature_distance"] = 0.05
    runs["knobs"] = "B,lam,penalty_on"
    assert penalty_warnings(runs) == []
    runs.loc[runs["B"] == 0.1, "feature_distance"] = 0.2
    w = penalty_warnings(runs)
    assert len(w) == 1 and "1 of 2 penalised trials" in w[0] and "by up to 0.100" in w[0]
    md = summary_markdown(analyse(runs), "t")
    # The setting is the same in both rows, so the table's caption says it once.
    assert "setting = penalty_on = action_features" in md.split("The same in every row:")[1], md
