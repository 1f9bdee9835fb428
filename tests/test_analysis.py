import numpy as np
import pandas as pd
import pytest

from analysis import (
    hypervolume,
    pareto_front,
    rank_ideal_distance,
    rank_topsis,
    relative_drops,
    replicate_summary,
)


def _cloud(seed: int, n: int = 60, k: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    vals = np.round(rng.uniform(size=(n, k)), 1)  # coarse grid: many ties
    vals[5] = vals[3]  # an exact duplicate
    cols = ["top1", "cmap", "f1"][:k]
    return pd.DataFrame(vals, columns=cols)


def _brute_front(df, objectives):
    sign = {n: (-1 if d == "max" else 1) for n, d in objectives.items()}
    pts = [[sign[n] * r[n] for n in objectives] for _, r in df.iterrows()]
    out = []
    for i, p in enumerate(pts):
        dom = any(
            all(q[j] <= p[j] for j in range(len(p))) and any(q[j] < p[j] for j in range(len(p)))
            for k, q in enumerate(pts)
            if k != i
        )
        out.append(not dom)
    return np.array(out)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    "objectives",
    [
        {"top1": "max", "cmap": "min"},
        {"top1": "min", "cmap": "min"},
        {"top1": "max", "cmap": "min", "f1": "min"},
    ],
)
def test_pareto_front_matches_brute_force_with_ties(seed, objectives):
    df = _cloud(seed, k=len(objectives))
    mask = pareto_front(df, objectives)
    np.testing.assert_array_equal(mask, _brute_front(df, objectives))
    assert mask[3] == mask[5]  # duplicates share their fate


def test_pareto_front_edge_cases():
    assert pareto_front(pd.DataFrame({"top1": [], "cmap": []})).shape == (0,)
    with pytest.raises(KeyError, match="'cmap' is not a column"):
        pareto_front(pd.DataFrame({"top1": [1.0]}))
    with pytest.raises(ValueError, match="'max' or 'min'"):
        pareto_front(pd.DataFrame({"top1": [1.0], "cmap": [0.5]}), {"top1": "up"})


def _exact_hv_2d(df, ref):
    """Exact 2-D hypervolume for (max top1, min cmap) by a sweep over sorted front points."""
    pts = sorted((r.top1, r.cmap) for r in df.itertuples() if r.top1 > ref[0] and r.cmap < ref[1])
    area, best_c = 0.0, ref[1]
    for t, c in sorted(pts, key=lambda p: -p[0]):  # descending top1
        if c < best_c:
            # strip from ref top1 to t, between c and best_c
            area += (t - ref[0]) * (best_c - c)
            best_c = c
    return area


@pytest.mark.parametrize("seed", range(6))
def test_hypervolume_matches_exact_2d(seed):
    df = _cloud(seed)
    ref = {"top1": 0.05, "cmap": 0.95}
    assert hypervolume(df, reference=ref) == pytest.approx(_exact_hv_2d(df, (0.05, 0.95)))
    # Default reference: fixed at Top-1 = 0, cMAP = 1, whatever the trials, so studies compare.
    assert hypervolume(df) == pytest.approx(_exact_hv_2d(df, (0.0, 1.0)))
    assert hypervolume(df.iloc[:1]) == pytest.approx(df.top1.iloc[0] * (1 - df.cmap.iloc[0]))


def test_hypervolume_simple_values():
    df = pd.DataFrame({"top1": [0.8, 0.6], "cmap": [0.5, 0.3]})
    ref = {"top1": 0.0, "cmap": 1.0}
    # union of [0,0.8]x[0.5,1] and [0,0.6]x[0.3,1] = 0.4 + 0.6*0.2
    assert hypervolume(df, reference=ref) == pytest.approx(0.4 + 0.12)
    three = pd.DataFrame({"top1": [0.5], "cmap": [0.5], "f1": [0.5]})
    assert hypervolume(
        three, {"top1": "max", "cmap": "min", "f1": "min"}, {"top1": 0.0, "cmap": 1.0, "f1": 1.0}
    ) == pytest.approx(0.125)


def test_relative_drops_and_replicates():
    df = pd.DataFrame(
        {
            "B": [0.3, 0.3, 0.5],
            "lam": [1.0, 1.0, 1.0],
            "seed": [0, 1, 0],
            "top1": [0.7, 0.9, 0.6],
            "cmap": [0.5, 0.7, 0.4],
            "f1": [0.4, 0.6, 0.3],
            "raw_top1": [0.8] * 3,
            "raw_cmap": [0.8] * 3,
            "raw_f1": [0.5] * 3,
        }
    )
    d = relative_drops(df)
    assert d["top1_drop"].tolist() == pytest.approx([0.125, -0.125, 0.25])
    s = replicate_summary(df, by=["B", "lam"])
    row = s[s.B == 0.3].iloc[0]
    assert row["top1_mean"] == pytest.approx(0.8) and row["n"] == 2
    assert row["top1_std"] == pytest.approx(np.std([0.7, 0.9], ddof=1))
    assert np.isnan(s[s.B == 0.5].iloc[0]["top1_std"])


def test_rankings_pick_a_front_point_with_its_b_and_lambda():
    df = pd.DataFrame(
        {
            "B": [0.0, 0.3, 0.5, 1.0, 0.7],
            "lam": [1.0] * 5,
            "top1": [0.95, 0.9, 0.7, 0.2, 0.5],
            "cmap": [0.9, 0.6, 0.55, 0.3, 0.8],
        }
    )
    front = pareto_front(df)
    assert front.tolist() == [True, True, True, True, False]
    for pick in (rank_ideal_distance(df), rank_topsis(df)):
        assert front[df.index.get_loc(pick.index)]
        assert df.loc[pick.index, "B"] == pick.B and pick.lam == 1.0
    assert rank_ideal_distance(df).B == 0.3  # the knee of this front


def test_rankings_with_a_single_front_point():
    df = pd.DataFrame({"B": [0.5, 0.6], "lam": [1.0, 1.0], "top1": [0.5, 0.5], "cmap": [0.6, 0.5]})
    pick = rank_ideal_distance(df)
    assert pick.B == 0.6 and pick.score == 0.0  # the only front point is the ideal itself
    assert rank_topsis(df).B == 0.6


def test_the_cross_model_table_has_the_raw_reference_and_each_configuration(tmp_path):
    """Tables 5/7/8: per fresh model, the raw reference and each configuration's mean over
    seeds; the loader keeps the per-model metrics of the runs (and not the curves)."""
    from mlflow.tracking import MlflowClient

    from analysis.load import trials_from_mlflow
    from analysis.render import summary_markdown
    from analysis.robustness import models_of, robustness_table
    from analysis.summary import analyse

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = MlflowClient(uri)
    exp = c.create_experiment("robustness")
    for b, seed, t_a, t_b, c_a, c_b in (
        (0.1, 0, 0.8, 0.6, 0.5, 0.7),
        (0.1, 1, 0.6, 0.4, 0.3, 0.5),
        (0.2, 0, 0.5, 0.3, 0.2, 0.4),
    ):
        run = c.create_run(exp, tags={"study.role": "trial"}).info.run_id
        params = {"B": b, "lam": 1.0, "seed": seed, "anonymizer": "unetpp_tiny",
                  "action_model": "x3d_tiny", "eval_action_model": "c3d_tiny",
                  "privacy_model": "resnet8_full", "eval_privacy_model": ""}  # fmt: skip
        for k, v in params.items():
            c.log_param(run, k, v)
        metrics = {
            "top1": t_a, "cmap": c_a, "f1": 0.5, "raw_top1": 0.9, "raw_cmap": 0.8, "raw_f1": 0.5,
            "top1/c3d_tiny": t_a, "top1/x3d_tiny": t_b, "top1/mean": (t_a + t_b) / 2,
            "top1/worst": min(t_a, t_b), "raw_top1/c3d_tiny": 0.9, "raw_top1/x3d_tiny": 0.7,
            "cmap/resnet8_full": c_a, "cmap/resnet18": c_b, "cmap/worst": max(c_a, c_b),
            "raw_cmap/resnet8_full": 0.8, "raw_cmap/resnet18": 0.9, "train/L_A": 1.0,
        }  # fmt: skip
        for k, v in metrics.items():
            c.log_metric(run, k, v)
        c.set_terminated(run)
    df = trials_from_mlflow("robustness", uri)
    assert "top1/x3d_tiny" in df and "raw_cmap/resnet18" in df and "train/L_A" not in df
    # The trials' own fresh models first (eval_action_model, else action_model).
    assert models_of(df, "top1") == ["c3d_tiny", "x3d_tiny", "mean", "worst"]
    assert models_of(df, "cmap") == ["resnet8_full", "resnet18", "worst"]
    table = robustness_table(df).set_index(["metric", "model"])
    assert list(table.columns) == ["raw", "B=0.1", "B=0.2"]  # named by what varies
    row = table.loc[("top1", "x3d_tiny")]
    assert row["raw"] == pytest.approx(0.7)
    assert row.iloc[1] == pytest.approx(0.5) and row.iloc[2] == pytest.approx(0.3)
    assert table.loc[("cmap", "worst")].iloc[1] == pytest.approx(0.6)
    md = summary_markdown(analyse(df), "robustness")
    assert "## Across fresh target models" in md and "| top1 | x3d_tiny | 0.7000 |" in md
    # A study without extra models has no such table.
    plain = df[[col for col in df.columns if "/" not in col]]
    assert robustness_table(plain).empty
    assert "Across fresh target models" not in summary_markdown(analyse(plain), "plain")


def test_a_markdown_cell_holding_a_pipe_stays_one_cell():
    import re

    from analysis import markdown

    lines = markdown.table(["check", "value"], [["largest |score - raw|", "0.000"], ["a\nb", 1]])
    # A row's cells are split at the pipes that are not escaped.
    cells = [re.split(r"(?<!\\)\|", line)[1:-1] for line in lines]
    assert [len(c) for c in cells] == [2, 2, 2, 2]
    assert cells[2][0].strip() == r"largest \|score - raw\|" and cells[3][0].strip() == "a b"
    assert lines[1] == "| --- | --- |"
