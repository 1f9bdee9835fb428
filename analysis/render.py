"""The report's rendering: ``summary.md`` (markdown), ``report.html`` and the plots, from an
:class:`analysis.summary.ReportData`; nothing here computes a figure."""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import markdown
from analysis.columns import COMPARED, SCORES
from analysis.families import families_markdown
from analysis.recommend import (
    RMS_SLACK,
    identical_across_b,
    unbound,
)
from analysis.robustness import robustness_markdown, robustness_table
from analysis.summary import (
    ReportData,
    analyse,
    constant_columns,
    drop_text,
    label,
    penalty_row,
    pm,
    setting,
)


@dataclass(frozen=True)
class Table:
    """A table as text: its header, its rows, and the caption that says the columns that are
    the same in every row once (they are left out of the rows)."""

    header: list[str]
    rows: list[list[str]]
    caption: str

    def markdown(self) -> list[str]:
        lines = markdown.table(self.header, self.rows)
        return lines + (["", self.caption] if self.caption else [])

    def html(self, table_id: str) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in self.rows
        )
        caption = f"<caption>{_md_inline(self.caption)}</caption>" if self.caption else ""
        return (
            f'<table id="{table_id}" border="1" style="border-collapse:collapse">{caption}'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )


#: The configurations table's describing columns (those that may go to the caption when the
#: same in every row), then its figures.
_DESCRIBING = ("anonymizer", "B", "λ", "setting", "seeds")


def configurations_table(data: ReportData) -> Table:
    """Table 1 style, one row per configuration: mean ± std over seeds and the drop from raw
    (``↓ 65.2%``); a describing column that is the same in every row moves to the caption."""
    rows = []
    for i, r in data.configs.iterrows():
        penalty = penalty_row(r)
        b, lam = (f"{r['B']:.3g}", f"{r['lam']:.3g}") if penalty else ("", "")
        rows.append(
            {
                "anonymizer": str(r.get("anonymizer", "")),
                "B": b,
                "λ": lam,
                "setting": setting(data.configs, i),
                "seeds": str(int(r["n"])),
                "Top-1": pm(r, "top1"),
                "cMAP": pm(r, "cmap"),
                "F1": pm(r, "f1"),
                "Top-1 drop": drop_text(r["top1_drop"]),
                "cMAP drop": drop_text(r["cmap_drop"]),
                "front": "yes" if r["on_front"] else "",
            }
        )
    frame = pd.DataFrame(rows)
    same = constant_columns(frame, _DESCRIBING) if len(frame) > 1 else {}
    header = [c for c in frame.columns if c not in same]
    said = [f"{k} = {v}" for k, v in same.items() if v]
    caption = (
        ("The same in every row: " + "; ".join(said) + ". " if said else "")
        + "A drop is relative to raw data: ↓ below raw, ↑ above it. Every column: "
        "`configurations.csv`."
    )
    return Table(header, [[row[c] for c in header] for row in rows], caption)


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
        f"{label(cfg, rec.chosen.index)}: Top-1 {pm(chosen, 'top1')}, cMAP "
        f"{pm(chosen, 'cmap')} over {int(chosen['n'])} seed(s).",
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
        names = "; ".join(label(cfg, i) for i in rec.indistinct)
        lines.append(
            f"- **Not distinguishable** from the chosen one (mean ± std overlaps in Top-1 and "
            f"cMAP): {names}."
        )
    else:
        lines.append("- Every other configuration is distinguishable from the chosen one.")
    lines.append(
        f"- TOPSIS picks {label(cfg, rec.topsis.index)} (closeness {rec.topsis.score:.4f})."
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
        *configurations_table(data).markdown(),
    ]
    ref = ", ".join(f"{k} = {v:g}" for k, v in data.reference.items())
    lines += [
        "",
        f"Hypervolume of the configuration means (reference {ref}): {data.hypervolume:.5f}",
        "",
        *robustness_markdown(robustness_table(data.trials)),
    ]
    if data.families:
        raw_cmap = data.raw[1] if data.raw else None
        lines += ["", *families_markdown(data.configs, data.families, label, raw_cmap)]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_report(
    df: pd.DataFrame,
    out: Path,
    title: str,
    png: bool = True,
    references: dict[str, float] | None = None,
    *,
    feature_references: dict[str, float] | None = None,
    chance: Mapping[str, float] | None = None,
    hv_reference: Mapping[str, float] | None = None,
    parent: str = "",
    tracking_uri: str = "",
    data: ReportData | None = None,
    searched: bool = False,
) -> list[Path]:
    """Write report.html, trials.csv, configurations.csv, summary.md and the plots into
    ``out``. ``references`` (edit name -> its mean RMS cost on the action test set, from the
    calibration) are drawn on the pixel penalty's B axis, ``feature_references`` (their mean
    feature distance) on the feature-based penalty's: a bound above an edit's cost lets f_A go
    at least that far. ``parent`` and ``tracking_uri`` name the study's records in the text;
    ``data``, when given, is ``analyse``'s result for ``df``; ``searched``: the study sampled
    its trials, so the hypervolume against trials completed is drawn (a grid's order means
    nothing)."""
    from analysis import plots

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
    learned, b = data.learned, data.ablation_bound
    for curve in data.b_curves:
        name = "metrics_vs_B" + (f"_{curve.family}" if curve.family else "")
        of = f" ({curve.family})" if curve.family else ""
        costs = references if curve.pixels else feature_references
        what = "RMS cost" if curve.pixels else "feature distance"
        edits = f"; dashed: {what} of reference edits" if costs else ""
        figs[name] = plots.metric_lines(
            curve.trials, "B", f"Metrics against B{of} at λ = {curve.lam:g} (Figure 3){edits}",
            costs,
        )  # fmt: skip
    if b is not None:
        at_b = learned[np.isclose(learned["B"], b)]
        figs["lambda_ablation"] = plots.metric_lines(
            at_b, "lam", f"Metrics against λ at B = {b:g} (Table 3)"
        )
    cols = [c for c in (*COMPARED, "rms", *SCORES) if c in t]
    same = constant_columns(t, cols) if len(t) > 1 else {}
    figs["parallel"] = plots.parallel_coordinates(t, [c for c in cols if c not in same], same)
    if searched:  # the order of a grid's trials means nothing
        figs["hypervolume"] = plots.hypervolume_plot(data.hypervolume_curve)
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
    table = configurations_table(data).html("configurations")
    parts.append(f"<h2>Configurations (mean ± std over seeds)</h2>{table}")
    ref = ", ".join(f"{k} = {v:g}" for k, v in data.reference.items())
    parts.append(f"<p>Hypervolume of the means (reference {ref}): {data.hypervolume:.5f}</p>")
    if data.families:
        raw_cmap = data.raw[1] if data.raw else None
        md = families_markdown(data.configs, data.families, label, raw_cmap)
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
            "pick (ideal distance)": label(data.configs, s.ideal),
            "pick (TOPSIS)": label(data.configs, s.topsis),
        }
        for s in data.families
    ]
    return pd.DataFrame(rows).to_html(index=False, float_format=lambda v: f"{v:.4f}")
