"""``python -m analysis.report --experiment NAME``: the report for choosing B.

Writes ``report.html`` (every plot and table, top to bottom), ``trials.csv`` (one row per
trial, with ``on_front``) and ``summary.md`` (Table 1 style, relative drops), plus each plot as
self-contained HTML and PNG. (``python -m study.report`` also logs them to the study's parent
run.)
"""

from __future__ import annotations

import argparse
import html
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.columns import COMPARED, SCORES


@dataclass
class ReportData:
    """Everything the report shows, computed once from the trials."""

    trials: pd.DataFrame  # finished trials, with on_front and relative drops
    raw: tuple[float, float] | None
    choices: list  # analysis.Choice
    hypervolume: float
    summary: pd.DataFrame


def analyse(df: pd.DataFrame) -> ReportData:
    """Pure: the front, drops, rankings, hypervolume and the replicate summary."""
    from analysis import (
        hypervolume,
        pareto_front,
        rank_ideal_distance,
        rank_topsis,
        relative_drops,
        replicate_summary,
    )

    done = df.dropna(subset=["top1", "cmap"]).copy()
    if len(done) == 0:
        raise ValueError("no finished trial with top1 and cmap to analyse")
    done["on_front"] = pareto_front(done)
    done = relative_drops(done)
    raw = (
        (float(done["raw_top1"].mean()), float(done["raw_cmap"].mean()))
        if "raw_top1" in done and done["raw_top1"].notna().any()
        else None
    )
    choices = [rank_ideal_distance(done), rank_topsis(done)]
    by = [c for c in ("anonymizer", "B", "lam") if c in done]
    summary = replicate_summary(done, by=by)
    summary = summary.merge(
        done.groupby(by, dropna=False)[["top1_drop", "cmap_drop", "f1_drop"]].mean().reset_index(),
        on=by,
    )
    return ReportData(done, raw, choices, hypervolume(done), summary)


def _pm(row: object, metric: str) -> str:
    mean, std = getattr(row, f"{metric}_mean"), getattr(row, f"{metric}_std")
    return f"{mean:.4f}" + ("" if pd.isna(std) else f" ± {std:.4f}")


def summary_markdown(data: ReportData, title: str) -> str:
    """Table 1 style: mean ± std over seeds and the relative drop from raw data."""
    lines = [f"# {title}", ""]
    if data.raw is not None:
        lines += [f"Raw data: Top-1 {data.raw[0]:.4f}, cMAP {data.raw[1]:.4f}", ""]
    lines += [
        "| anonymizer | B | λ | seeds | Top-1 | cMAP | F1 | Top-1 drop | cMAP drop |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in data.summary.itertuples():
        lines.append(
            f"| {getattr(r, 'anonymizer', '')} | {r.B:.3g} | {r.lam:.3g} | {r.n} | "
            f"{_pm(r, 'top1')} | {_pm(r, 'cmap')} | {_pm(r, 'f1')} | "
            f"{r.top1_drop:+.1%} | {r.cmap_drop:+.1%} |"
        )
    lines += ["", "Sweet spots on the Pareto front:", ""]
    for c in data.choices:
        lines.append(f"- {c.method}: B = {c.B:.3g}, λ = {c.lam:.3g} (score {c.score:.4f})")
    lines += ["", f"Hypervolume (reference: worst observed Top-1 and cMAP): {data.hypervolume:.5f}"]
    return "\n".join(lines) + "\n"


def write_report(
    df: pd.DataFrame,
    out: Path,
    title: str,
    png: bool = True,
    references: dict[str, float] | None = None,
) -> list[Path]:
    """Write report.html, trials.csv, summary.md and the plots into ``out``. ``references``
    (edit name -> its mean RMS cost on the action test set, from the calibration) are drawn on
    the B axes: a bound above an edit's cost lets f_A go at least that far."""
    from analysis import hypervolume_curve, plots

    out.mkdir(parents=True, exist_ok=True)
    data = analyse(df)
    t = data.trials
    fixed = t["fixed_anonymizer"].eq(True) if "fixed_anonymizer" in t else None
    figs = {"pareto": plots.pareto_scatter(t, t["on_front"].to_numpy(), data.raw, fixed)}
    learned = t[~fixed] if fixed is not None else t
    if "lam" in learned and (learned["lam"] == 1.0).any() and learned["B"].nunique() > 1:
        figs["metrics_vs_B"] = plots.metric_lines(
            learned[learned["lam"] == 1.0],
            "B",
            "Metrics against B at λ = 1 (Figure 3); dashed: RMS cost of reference edits",
            references,
        )
    b = _ablation_bound(learned)
    if b is not None:
        at_b = learned[np.isclose(learned["B"], b)]
        figs["lambda_ablation"] = plots.metric_lines(
            at_b, "lam", f"Metrics against λ at B = {b:g} (Table 3)"
        )
    cols = [c for c in (*COMPARED, "rms", *SCORES) if c in t]
    figs["parallel"] = plots.parallel_coordinates(t, cols)
    order = "start_time" if "start_time" in t else None
    figs["hypervolume"] = plots.hypervolume_plot(hypervolume_curve(t, order=order))
    written: list[Path] = []
    for name, fig in figs.items():
        written += plots.write_figure(fig, out / name, png=png)

    csv = out / "trials.csv"
    t.assign(on_front=t["on_front"].map({True: "true", False: "false"})).to_csv(csv, index=False)
    md = out / "summary.md"
    md.write_text(summary_markdown(data, title))
    report = out / "report.html"
    report.write_text(_html(title, data, figs))
    return [report, csv, md, *written]


def _ablation_bound(learned: pd.DataFrame) -> float | None:
    """The B at which the most λ values were tried (at least two), for the λ ablation."""
    if not {"B", "lam"} <= set(learned) or len(learned) == 0:
        return None
    counts = learned.groupby("B")["lam"].nunique()
    return float(counts.idxmax()) if counts.max() > 1 else None


def _html(title: str, data: ReportData, figs: dict) -> str:
    """One self-contained page: plotly.js once, then each figure."""
    import plotly.io as pio

    parts = [f"<h1>{html.escape(title)}</h1>"]
    if data.raw is not None:
        parts.append(
            f"<p>Raw data: Top-1 {data.raw[0]:.4f}, cMAP {data.raw[1]:.4f}. "
            "Each point is a trial; the green line is the Pareto front.</p>"
        )
    parts.append(
        "<h2>Recommended B</h2><ul>"
        + "".join(
            f"<li><b>{c.method}</b>: B = {c.B:.3g}, λ = {c.lam:.3g} (score {c.score:.4f})</li>"
            for c in data.choices
        )
        + "</ul>"
    )
    first = True
    for name, fig in figs.items():
        parts.append(
            f'<div id="fig-{name}">'
            + pio.to_html(fig, include_plotlyjs=first, full_html=False, div_id=f"plot-{name}")
            + "</div>"
        )
        first = False
    table = data.summary.to_html(index=False, float_format=lambda v: f"{v:.4f}")
    parts.append(f"<h2>Summary (mean ± std over seeds)</h2>{table}")
    parts.append(f"<p>Hypervolume: {data.hypervolume:.5f}</p>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        + html.escape(title)
        + "</title></head><body>"
        + "\n".join(parts)
        + "</body></html>"
    )


def build_parser(prog: str = "python -m analysis.report") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Write the report of a study: Pareto front, "
        "rankings, plots, trials.csv and summary.md.",
    )
    p.add_argument("--experiment", required=True, help="MLflow experiment (the study) name")
    p.add_argument(
        "--tracking-uri",
        default="",
        help="MLflow tracking URI (default: the study's SQLite store in "
        "--study-dir/EXPERIMENT/mlflow.db)",
    )
    p.add_argument("--study-dir", default="studies", help="root of the studies")
    p.add_argument("--out", default="", help="output folder (default: STUDY/report)")
    p.add_argument("--no-png", action="store_true", help="skip the PNG copies of the plots")
    return p


def source_and_out(args: argparse.Namespace) -> tuple[str, Path]:
    """The tracking URI and the output folder that ``build_parser``'s arguments name."""
    root = Path(args.study_dir).resolve() / args.experiment
    uri = args.tracking_uri or f"sqlite:///{root / 'mlflow.db'}"
    return uri, Path(args.out) if args.out else root / "report"


def report_from_mlflow(experiment: str, uri: str, out: Path, *, png: bool = True) -> list[Path]:
    """Write the report of ``experiment``'s trials and calibration, read from MLflow at ``uri``,
    into ``out``; return the files, report.html first."""
    from analysis.load import calibration_from_mlflow, trials_from_mlflow

    df, refs = trials_from_mlflow(experiment, uri), calibration_from_mlflow(experiment, uri)
    return write_report(df, out, f"Study {experiment}", png=png, references=refs)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    uri, out = source_and_out(args)
    try:
        paths = report_from_mlflow(args.experiment, uri, out, png=not args.no_png)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"report: {paths[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
