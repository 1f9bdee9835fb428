"""``python -m analysis.report --experiment NAME``: the report for choosing B.

Writes ``report.html`` (every plot and table, top to bottom), ``trials.csv`` (one row per
trial, with ``on_front``), ``configurations.csv`` (one row per configuration: mean and std over
seeds) and ``summary.md`` (warnings, the recommendation, Table 1 style), plus each plot as
self-contained HTML and PNG. (``python -m study.report`` also logs them to the study's parent
run.)
"""

from __future__ import annotations

import argparse
import html
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.columns import COMPARED, FAMILY, KNOBS_SET, SCORES, SETTING
from analysis.families import FamilySummary, families_markdown, families_of, summarise
from analysis.pareto import default_reference, hypervolume, pareto_front
from analysis.ranking import relative_drops
from analysis.recommend import (
    RMS_SLACK,
    Recommendation,
    config_columns,
    configurations,
    has_knob,
    identical_across_b,
    knobs_of,
    recommend,
    sanity_warnings,
    unbound,
)
from analysis.robustness import robustness_markdown, robustness_table


@dataclass
class ReportData:
    """Everything the report shows, computed once from the trials."""

    trials: pd.DataFrame  # finished trials, with on_front (per trial) and relative drops
    configs: pd.DataFrame  # one row per configuration: mean and std over seeds, on_front
    raw: tuple[float, float] | None
    rec: Recommendation
    hypervolume: float
    reference: dict[str, float]
    warnings: list[str]
    #: Per anonymizer family (when the study ran more than one): front, HV, picks.
    families: list[FamilySummary] = field(default_factory=list)
    #: The init point (f_A before the game: Top-1, cMAP, RMS), when the game trained an f_A.
    init: tuple[float, float, float] | None = None


def analyse(
    df: pd.DataFrame,
    chance: Mapping[str, float] | None = None,
    reference: Mapping[str, float] | None = None,
) -> ReportData:
    """Pure: the configurations (means over seeds), their front, the recommendation, the
    hypervolume of the means (``reference``: default Top-1 = 0, cMAP = 1) and the sanity
    warnings (``chance``: the chance levels the study recorded)."""
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
    init = (
        tuple(float(done[f"init_{m}"].mean()) for m in ("top1", "cmap", "rms"))
        if "init_top1" in done and done["init_top1"].notna().any()
        else None
    )
    drops = [f"{m}_drop" for m in SCORES]
    configs = configurations(done, metrics=(*SCORES, "rms", *drops))
    configs["on_front"] = pareto_front(configs)
    ref = dict(reference) if reference is not None else default_reference(configs)
    several = FAMILY in configs and len(families_of(configs)) > 1
    return ReportData(
        trials=done,
        configs=configs,
        raw=raw,
        rec=recommend(configs),
        hypervolume=hypervolume(configs, reference=ref),
        reference=ref,
        warnings=sanity_warnings(done, chance or {}),
        families=summarise(configs, ref, raw[1] if raw else None) if several else [],
        init=init,  # type: ignore[arg-type]
    )


def only_family(df: pd.DataFrame, family: str) -> pd.DataFrame:
    """The trials of one anonymizer family (``--family``); an unknown family is an error that
    lists those the study ran."""
    present = families_of(df) if FAMILY in df else []
    if family not in present:
        raise ValueError(
            f"--family {family}: the study ran no trial of that family; its families: "
            + (", ".join(present) or "none recorded (a study from before families)")
        )
    return df[df[FAMILY] == family]


def _pm(row: pd.Series, metric: str) -> str:
    mean, std = row[metric], row.get(f"{metric}_std", float("nan"))
    return f"{mean:.4f}" + ("" if pd.isna(std) else f" ± {std:.4f}")


def _knobs(row: pd.Series) -> list[str] | None:
    return knobs_of(row[KNOBS_SET]) if KNOBS_SET in row else None


def _study_knobs(configs: pd.DataFrame) -> set[str]:
    """Every family field that describes some row of ``configs``."""
    if KNOBS_SET not in configs:
        return set()
    return {k for v in configs[KNOBS_SET] for k in knobs_of(v) or []}


def _penalty_row(row: pd.Series) -> bool:
    knobs = _knobs(row)
    return knobs is None or "B" in knobs


def _setting(configs: pd.DataFrame, i: object) -> str:
    """A fixed family's knobs in words, as the study recorded them; ''."""
    row = configs.loc[i]
    return str(row[SETTING]) if SETTING in row and isinstance(row[SETTING], str) else ""


def _label(configs: pd.DataFrame, i: object) -> str:
    """The configuration at row ``i`` by the config columns that vary, and by the family
    fields that describe it (B and λ always, for the penalty method; a family's own fields for
    its rows only)."""
    row = configs.loc[i]
    own, family_fields = _knobs(row), _study_knobs(configs)
    keys = [
        c
        for c in config_columns(configs)
        if (c in own if own is not None and c in family_fields else configs[c].nunique() > 1)
        or (own is None and c in ("B", "lam"))
    ]
    names = {"lam": "λ"}
    return ", ".join(
        f"{names.get(k, k)} = {row[k]:.3g}" if isinstance(row[k], float) else f"{k} = {row[k]}"
        for k in keys
    )


def download_command(run_id: str, tracking_uri: str) -> str:
    """The command that applies a run's anonymizer to a video (it downloads it first)."""
    uri = f" --tracking-uri {tracking_uri}" if tracking_uri else ""
    return (
        f"python -m trainables.anonymize --weights {run_id}{uri} --input VIDEO_OR_DIR "
        "--output OUT_DIR"
    )


def _init_line(init: tuple[float, float, float]) -> str:
    return (
        f"Init point (f_A before the game): Top-1 {init[0]:.4f}, cMAP {init[1]:.4f}, RMS "
        f"{init[2]:.4f}: what the game starts from; away from raw, f_A degraded the data before "
        "B or λ acted."
    )


def recommendation_lines(data: ReportData, tracking_uri: str = "") -> list[str]:
    """The recommendation in words (Markdown), for summary.md and the HTML page."""
    rec, cfg = data.rec, data.configs
    chosen = cfg.loc[rec.chosen.index]
    lines = [
        f"- **Chosen** (closest to the ideal point on the front of the seed means): "
        f"{_label(cfg, rec.chosen.index)}: Top-1 {_pm(chosen, 'top1')}, cMAP "
        f"{_pm(chosen, 'cmap')} over {int(chosen['n'])} seed(s).",
    ]
    if rec.run_id:
        lines.append(
            f"- Chosen run (the seed closest to the mean): `{rec.run_id}`. Apply its anonymizer "
            f"with `{download_command(rec.run_id, tracking_uri)}`"
            + (
                " while that MLflow server runs (for a study whose launcher served it, start "
                "the `mlflow ui` command the launcher printed)."
                if tracking_uri
                else "."
            )
        )
    if rec.seeds < 2:
        lines.append(
            "- One seed per configuration: the spread over seeds is unknown, so no choice can "
            "be told apart from its neighbours. Run the study with `--seeds 3`."
        )
    elif rec.indistinct:
        names = "; ".join(_label(cfg, i) for i in rec.indistinct)
        lines.append(
            f"- **Not distinguishable** from the chosen one (mean ± std overlaps in Top-1 and "
            f"cMAP): {names}."
        )
    else:
        lines.append("- Every other configuration is distinguishable from the chosen one.")
    lines.append(
        f"- TOPSIS picks {_label(cfg, rec.topsis.index)} (closeness {rec.topsis.score:.4f})."
    )
    return lines + _bound_lines(data, chosen)


def _bound_lines(data: ReportData, chosen: pd.Series) -> list[str]:
    """What the report must say when the chosen configuration's bound is not what shaped it."""
    one = pd.DataFrame([chosen])
    if len(unbound(one)):
        return [
            f"- **Its bound did not hold**: mean RMS {chosen['rms']:.3f} exceeds B = "
            f"{chosen['B']:.3g} by more than {RMS_SLACK:g}, so B is not what shaped this "
            "result; read its RMS as the degradation it allows, or choose a larger λ."
        ]
    same = [bs for bs in identical_across_b(data.trials) if float(chosen.get("B", -1)) in bs]
    if same:
        return [
            "- **Its B changed nothing**: B = "
            + ", ".join(f"{b:g}" for b in same[0])
            + " gave identical trials at this λ, so the penalty did not bind."
        ]
    return []


def summary_markdown(data: ReportData, title: str, parent: str = "", tracking_uri: str = "") -> str:
    """The warnings first, then the recommendation, then Table 1 style: mean ± std over seeds
    and the relative drop from raw data."""
    lines = [f"# {title}", ""]
    if parent:
        lines += [f"Study parent run: `{parent}`", ""]
    if data.warnings:
        lines += ["## Warnings", ""] + [f"- **{w}**" for w in data.warnings] + [""]
    if data.raw is not None:
        lines += [f"Raw data: Top-1 {data.raw[0]:.4f}, cMAP {data.raw[1]:.4f}", ""]
    if data.init is not None:
        lines += [_init_line(data.init), ""]
    lines += ["## Recommendation", "", *recommendation_lines(data, tracking_uri), ""]
    lines += [
        "## Configurations (mean ± std over seeds)",
        "",
        "| anonymizer | B | λ | setting | seeds | Top-1 | cMAP | F1 | Top-1 drop | cMAP drop "
        "| front |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for i, r in data.configs.iterrows():
        penalty = _penalty_row(r)
        b, lam = (f"{r['B']:.3g}", f"{r['lam']:.3g}") if penalty else ("", "")
        lines.append(
            f"| {r.get('anonymizer', '')} | {b} | {lam} | {_setting(data.configs, i)} | "
            f"{int(r['n'])} | "
            f"{_pm(r, 'top1')} | {_pm(r, 'cmap')} | {_pm(r, 'f1')} | "
            f"{r['top1_drop']:+.1%} | {r['cmap_drop']:+.1%} | {'yes' if r['on_front'] else ''} |"
        )
    ref = ", ".join(f"{k} = {v:g}" for k, v in data.reference.items())
    lines += [
        "",
        f"Hypervolume of the configuration means (reference {ref}): {data.hypervolume:.5f}",
        "",
        *robustness_markdown(robustness_table(data.trials)),
    ]
    if data.families:
        raw_cmap = data.raw[1] if data.raw else None
        lines += ["", *families_markdown(data.configs, data.families, _label, raw_cmap)]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_report(
    df: pd.DataFrame,
    out: Path,
    title: str,
    png: bool = True,
    references: dict[str, float] | None = None,
    *,
    chance: Mapping[str, float] | None = None,
    hv_reference: Mapping[str, float] | None = None,
    parent: str = "",
    tracking_uri: str = "",
    data: ReportData | None = None,
) -> list[Path]:
    """Write report.html, trials.csv, configurations.csv, summary.md and the plots into
        ``out``. ``references`` (edit name -> its mean RMS cost on the action test set, from the
        calibration) are drawn on the B axes: a bound above an edit's cost lets f_A go at least
        that far. ``parent`` and ``tracking_uri`` name the study's records in the text; ``data``, when
    given, is ``analyse``'s result for ``df``."""
    from analysis import hypervolume_curve, plots

    out.mkdir(parents=True, exist_ok=True)
    data = data if data is not None else analyse(df, chance, hv_reference)
    t = data.trials
    fixed = t["fixed_anonymizer"].eq(True) if "fixed_anonymizer" in t else None
    init = data.init[:2] if data.init is not None else None
    figs = {"pareto": plots.pareto_scatter(t, data.configs, data.raw, fixed, init)}
    if data.families:
        overall = (data.rec.chosen.index, data.rec.topsis.index)
        figs["families"] = plots.families_scatter(data.configs, data.raw, data.families, overall)
    # The B and lambda curves are the penalty method's.
    learned = t[has_knob(t, "B")] if KNOBS_SET in t else t[~fixed] if fixed is not None else t
    lam = _sweep_lambda(learned)
    if lam is not None:
        figs["metrics_vs_B"] = plots.metric_lines(
            learned[learned["lam"] == lam],
            "B",
            f"Metrics against B at λ = {lam:g} (Figure 3); dashed: RMS cost of reference edits",
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
    figs["hypervolume"] = plots.hypervolume_plot(
        hypervolume_curve(t, reference=data.reference, order=order)
    )
    written: list[Path] = []
    for name, fig in figs.items():
        written += plots.write_figure(fig, out / name, png=png)

    csv = out / "trials.csv"
    t.assign(on_front=t["on_front"].map({True: "true", False: "false"})).to_csv(csv, index=False)
    configs = out / "configurations.csv"
    data.configs.to_csv(configs, index=False)
    md = out / "summary.md"
    md.write_text(summary_markdown(data, title, parent, tracking_uri))
    report = out / "report.html"
    report.write_text(_html(title, data, figs, parent, tracking_uri))
    return [report, csv, md, configs, *written]


def _sweep_lambda(learned: pd.DataFrame) -> float | None:
    """The λ > 0 at which the most bounds B were tried (at least two; the largest such λ, the
    one that binds, on a tie), for the plot against B."""
    if not {"B", "lam"} <= set(learned) or len(learned) == 0:
        return None
    on = learned[learned["lam"] > 0]
    counts = on.groupby("lam")["B"].nunique()
    if counts.empty or counts.max() < 2:
        return None
    return float(counts[counts == counts.max()].index.max())


def _ablation_bound(learned: pd.DataFrame) -> float | None:
    """The B at which the most λ values were tried (at least two), for the λ ablation."""
    if not {"B", "lam"} <= set(learned) or len(learned) == 0:
        return None
    counts = learned.groupby("B")["lam"].nunique()
    return float(counts.idxmax()) if counts.max() > 1 else None


def _md_inline(text: str) -> str:
    """Markdown's **bold** and `code` as HTML, the rest escaped."""
    import re

    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def _html(title: str, data: ReportData, figs: dict, parent: str, tracking_uri: str) -> str:
    """One self-contained page: the warnings and the recommendation first, plotly.js once,
    then each figure."""
    import plotly.io as pio

    parts = [f"<h1>{html.escape(title)}</h1>"]
    if parent:
        parts.append(f"<p>Study parent run: <code>{html.escape(parent)}</code></p>")
    if data.warnings:
        parts.append(
            '<div id="warnings" style="border:2px solid #d62728;padding:0 1em">'
            "<h2>Warnings</h2><ul>"
            + "".join(f"<li><b>{html.escape(w)}</b></li>" for w in data.warnings)
            + "</ul></div>"
        )
    if data.raw is not None:
        parts.append(
            f"<p>Raw data: Top-1 {data.raw[0]:.4f}, cMAP {data.raw[1]:.4f}. "
            "Each small point is a trial; the large points are the means over seeds of each "
            "configuration, with ± std bars; the green line is their Pareto front.</p>"
        )
    if data.init is not None:
        parts.append(f'<p id="init-point">{html.escape(_init_line(data.init))}</p>')
    parts.append(
        '<h2>Recommended B</h2><ul id="recommendation">'
        + "".join(
            f"<li>{_md_inline(line[2:])}</li>" for line in recommendation_lines(data, tracking_uri)
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
    table = data.configs.to_html(index=False, float_format=lambda v: f"{v:.4f}")
    parts.append(f"<h2>Configurations (mean and std over seeds)</h2>{table}")
    ref = ", ".join(f"{k} = {v:g}" for k, v in data.reference.items())
    parts.append(f"<p>Hypervolume of the means (reference {ref}): {data.hypervolume:.5f}</p>")
    if data.families:
        raw_cmap = data.raw[1] if data.raw else None
        md = families_markdown(data.configs, data.families, _label, raw_cmap)
        parts.append(
            '<div id="families">'
            + "".join(
                f"<h2>{html.escape(line[3:])}</h2>"
                if line.startswith("## ")
                else f"<p>{_md_inline(line)}</p>"
                for line in md
                if line and not line.startswith("|")
            )
            + _families_table(data)
            + "</div>"
        )
    across = robustness_table(data.trials)
    if not across.empty:
        parts.append(
            '<h2 id="across-models">Across fresh target models (Tables 5/7/8)</h2>'
            + across.to_html(index=False, float_format=lambda v: f"{v:.4f}")
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        + html.escape(title)
        + "</title></head><body>"
        + "\n".join(parts)
        + "</body></html>"
    )


def _families_table(data: ReportData) -> str:
    rows = [
        {
            "family": s.family,
            "configurations": s.configurations,
            "hypervolume": s.hypervolume,
            "on overall front": s.on_overall_front,
            "best Top-1 at cMAP <= raw - 0.15": s.best_top1_private,
            "pick (ideal distance)": _label(data.configs, s.ideal),
            "pick (TOPSIS)": _label(data.configs, s.topsis),
        }
        for s in data.families
    ]
    return pd.DataFrame(rows).to_html(index=False, float_format=lambda v: f"{v:.4f}")


def build_parser(prog: str = "python -m analysis.report") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        allow_abbrev=False,
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
    p.add_argument(
        "--parent",
        default="",
        help="the study's parent run id (default: the newest parent run of the experiment)",
    )
    p.add_argument(
        "--hv-reference",
        default="",
        metavar="TOP1,CMAP",
        help="hypervolume reference point (default: 0,1, the worst values, so studies compare)",
    )
    p.add_argument("--no-png", action="store_true", help="skip the PNG copies of the plots")
    p.add_argument(
        "--family",
        default="",
        help="report one anonymizer family only, by the name its trials recorded (default: "
        "every family, on one front); one the study did not run is an error listing those it did",
    )
    return p


def parse_reference(text: str) -> dict[str, float] | None:
    """``--hv-reference TOP1,CMAP`` as a reference point (None when empty)."""
    if not text:
        return None
    try:
        top1, cmap = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--hv-reference takes TOP1,CMAP, e.g. 0,1; got {text!r}") from None
    return {"top1": top1, "cmap": cmap}


def options(args: argparse.Namespace) -> dict[str, Any]:
    """``build_parser``'s report options as keyword arguments of :func:`report_from_mlflow`."""
    return {
        "png": not args.no_png,
        "parent": args.parent,
        "hv_reference": parse_reference(args.hv_reference),
        "family": args.family,
    }


def source_and_out(args: argparse.Namespace) -> tuple[str, Path]:
    """The tracking URI and the output folder that ``build_parser``'s arguments name."""
    root = Path(args.study_dir).resolve() / args.experiment
    db = root / "mlflow.db"
    if not args.tracking_uri and not db.is_file():  # never create an empty store by reading
        raise ValueError(
            f"no study records at {db}: check --experiment and --study-dir, or give the study's "
            "--tracking-uri"
        )
    uri = args.tracking_uri or f"sqlite:///{db}"
    default = root / ("report-" + args.family if args.family else "report")
    return uri, Path(args.out) if args.out else default


def report_from_mlflow(
    experiment: str,
    uri: str,
    out: Path,
    *,
    png: bool = True,
    parent: str = "",
    hv_reference: Mapping[str, float] | None = None,
    served_at: str = "",
    family: str = "",
) -> tuple[list[Path], str, ReportData]:
    """Write the report of one study (``parent``, default the experiment's newest) read from
    MLflow at ``uri`` into ``out``; return the files (report.html first), the parent run id and
    the analysis. ``served_at`` is the server the text tells users to download from (default:
    ``uri`` when it is a server)."""
    from analysis.load import study_from_mlflow, trials_from_mlflow

    record = study_from_mlflow(experiment, uri, parent)
    if record.others:
        print(
            f"note: experiment {experiment!r} holds {len(record.others)} other study parent "
            f"run(s); this report covers {record.run_id} only (choose with --parent)",
            file=sys.stderr,
        )
    df = trials_from_mlflow(experiment, uri, record.run_id)
    if family:
        df = only_family(df, family)
    data = analyse(df, record.chance, hv_reference)
    http = served_at or (uri if uri.startswith("http") else "")
    paths = write_report(
        df,
        out,
        f"Study {experiment}" + (f" ({family} family)" if family else ""),
        png=png,
        references=record.calibration,
        chance=record.chance,
        hv_reference=hv_reference,
        parent=record.run_id,
        tracking_uri=http,
        data=data,
    )
    return paths, record.run_id, data


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        uri, out = source_and_out(args)
        paths = report_from_mlflow(args.experiment, uri, out, **options(args))[0]
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"report: {paths[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
