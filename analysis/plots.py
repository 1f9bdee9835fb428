"""Plotly figures of a study. Each takes a DataFrame of trials (and computed results), never
recomputes the analysis, and returns a ``go.Figure``; ``write_figure`` saves HTML and PNG."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.columns import COMPARED, FAMILY, KNOBS, SCORES

if TYPE_CHECKING:
    from analysis.families import FamilySummary

HOVER = [*COMPARED, *KNOBS, "run_id"]
LEARNED_MARKER = dict(size=9, color="#1f77b4")


def _hover(df: pd.DataFrame) -> tuple[np.ndarray, str]:
    cols = [c for c in HOVER if c in df]
    tmpl = "<br>".join(f"{c}=%{{customdata[{i}]}}" for i, c in enumerate(cols))
    return df[cols].astype(str).to_numpy(), tmpl + "<br>top1=%{x:.3f}<br>cmap=%{y:.3f}"


def axis_range(
    values: Sequence[float], min_span: float = 0.1, pad: float = 0.04
) -> tuple[float, float]:
    """An axis over ``values`` (fractions in [0, 1]) that spans at least ``min_span``, kept
    inside [0, 1] where it fits, plus ``pad`` of the span on each side: so that a difference of
    one clip does not fill the width, and the points at 0 or 1 are not cut in half."""
    finite = [float(v) for v in values if v == v]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if hi - lo < min_span:
        mid = (lo + hi) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
        shift = min(0.0, 1.0 - hi) + max(0.0, -lo)
        lo, hi = lo + shift, hi + shift
    margin = pad * (hi - lo)
    return lo - margin, hi + margin


def _axes_over(fig: go.Figure, points: pd.DataFrame, *extra: tuple[float, float] | None) -> None:
    """Both axes over ``points`` (``top1``/``cmap``, with their ``_std`` bars when present) and
    the ``extra`` points (the raw reference, the init point), each spanning at least 0.1."""
    ranges = {}
    for axis, metric in (("x", "top1"), ("y", "cmap")):
        values = list(points[metric]) if metric in points else []
        if f"{metric}_std" in points:
            std = points[f"{metric}_std"].fillna(0)
            values += list(points[metric] + std) + list(points[metric] - std)
        values += [p[0 if axis == "x" else 1] for p in extra if p is not None]
        ranges[axis] = axis_range(values)
    fig.update_xaxes(range=ranges["x"])
    fig.update_yaxes(range=ranges["y"])


def pareto_scatter(
    df: pd.DataFrame,
    configs: pd.DataFrame,
    raw: tuple[float, float] | None,
    fixed: pd.Series | None = None,
    init: tuple[float, float] | None = None,
) -> go.Figure:
    """Action Top-1 (x) against privacy cMAP (y): every trial, the means over seeds of each
    configuration (``configs``, with ± std bars, when some has several seeds), the front of
    those means as a step line, the raw reference, the init point (f_A before the game) and
    the fixed anonymizers (baselines) as labelled markers.

    ``fixed`` marks the rows of fixed anonymizers; they are trials too, drawn labelled.
    """
    fixed = pd.Series(False, index=df.index) if fixed is None else fixed
    fig = go.Figure()
    learned = df[~fixed]
    cd, tmpl = _hover(learned)
    fig.add_trace(
        go.Scatter(
            x=learned["top1"],
            y=learned["cmap"],
            mode="markers",
            name="trials",
            marker=LEARNED_MARKER,
            customdata=cd,
            hovertemplate=tmpl + "<extra></extra>",
        )
    )
    base = df[fixed]
    if len(base):
        cd, tmpl = _hover(base)
        fig.add_trace(
            go.Scatter(
                x=base["top1"],
                y=base["cmap"],
                mode="markers+text",
                name="baselines",
                text=base["anonymizer"],
                textposition="top center",
                customdata=cd,
                marker=dict(size=11, symbol="diamond", color="#ff7f0e"),
                hovertemplate=tmpl + "<extra></extra>",
            )
        )
    f = configs[configs["on_front"].astype(bool)].sort_values("top1")
    if "n" in configs and (configs["n"] > 1).any():
        cd, tmpl = _hover(configs)
        fig.add_trace(
            go.Scatter(
                x=configs["top1"],
                y=configs["cmap"],
                mode="markers",
                name="mean over seeds",
                marker=dict(size=13, color="rgba(44,160,44,0.5)", line=dict(width=1)),
                error_x=dict(type="data", array=configs["top1_std"].fillna(0), visible=True),
                error_y=dict(type="data", array=configs["cmap_std"].fillna(0), visible=True),
                customdata=cd,
                hovertemplate=tmpl + "<br>seeds=%{text}<extra></extra>",
                text=configs["n"].astype(str),
            )
        )
    if len(f):
        fig.add_trace(
            go.Scatter(
                x=f["top1"],
                y=f["cmap"],
                mode="lines",
                name="Pareto front (of the means)",
                line=dict(shape="hv", color="#2ca02c"),
                hoverinfo="skip",
            )
        )
    for point, name, label, where, marker in (
        (raw, "raw data", "raw", "bottom center", dict(size=13, symbol="star", color="#d62728")),
        (init, "init point (f_A before the game)", "init", "top center",
         dict(size=11, symbol="x", color="#8c564b")),
    ):  # fmt: skip
        if point is not None:
            fig.add_trace(
                go.Scatter(
                    x=[point[0]],
                    y=[point[1]],
                    mode="markers+text",
                    name=name,
                    text=[label],
                    textposition=where,
                    marker=marker,
                )
            )
    _axes_over(fig, pd.concat([df[["top1", "cmap"]], configs]), raw, init)
    fig.update_layout(
        title="Action Top-1 vs privacy cMAP (right and down is better)",
        xaxis_title="action Top-1 (higher is better)",
        yaxis_title="privacy cMAP (lower is better)",
        template="plotly_white",
    )
    return fig


#: Colours and markers of the families on the families plot, in the order they are listed.
FAMILY_STYLES = (
    ("#1f77b4", "circle"),
    ("#9467bd", "triangle-up"),
    ("#2ca02c", "square"),
    ("#ff7f0e", "diamond"),
    ("#8c564b", "pentagon"),
    ("#e377c2", "hexagon"),
)


def families_scatter(
    configs: pd.DataFrame,
    raw: tuple[float, float] | None,
    summaries: Sequence[FamilySummary],
    overall: tuple[object, object],
) -> go.Figure:
    """Every family on one Top-1/cMAP plot: each configuration (mean over seeds) in its
    family's colour and marker, each family's own front (dotted), the overall front (solid
    black), each family's picks (ideal distance: open star; TOPSIS: open cross) and the overall
    picks (``overall``: the rows chosen by ideal distance and TOPSIS; filled stars)."""
    fig = go.Figure()
    for n, s in enumerate(summaries):
        colour, symbol = FAMILY_STYLES[n % len(FAMILY_STYLES)]
        g = configs[configs[FAMILY] == s.family]
        cd, tmpl = _hover(g)
        fig.add_trace(
            go.Scatter(
                x=g["top1"], y=g["cmap"], mode="markers", name=s.family, legendgroup=s.family,
                marker=dict(size=10, color=colour, symbol=symbol), customdata=cd,
                hovertemplate=tmpl + "<extra></extra>",
            )
        )  # fmt: skip
        front = configs.loc[s.front].sort_values("top1")
        fig.add_trace(
            go.Scatter(
                x=front["top1"], y=front["cmap"], mode="lines", legendgroup=s.family,
                name=f"{s.family} front", line=dict(shape="hv", color=colour, dash="dot"),
                hoverinfo="skip",
            )
        )  # fmt: skip
        for row, sym, how in ((s.ideal, "star-open", "ideal"), (s.topsis, "x-open", "TOPSIS")):
            fig.add_trace(
                go.Scatter(
                    x=[configs.loc[row, "top1"]], y=[configs.loc[row, "cmap"]], mode="markers",
                    legendgroup=s.family, showlegend=False, name=f"{s.family} pick ({how})",
                    marker=dict(size=18, color=colour, symbol=sym, line=dict(width=2)),
                )
            )  # fmt: skip
    f = configs[configs["on_front"].astype(bool)].sort_values("top1")
    fig.add_trace(
        go.Scatter(
            x=f["top1"], y=f["cmap"], mode="lines", name="overall front",
            line=dict(shape="hv", color="black"), hoverinfo="skip",
        )
    )  # fmt: skip
    for pick, how in zip(overall, ("ideal distance", "TOPSIS"), strict=True):
        fig.add_trace(
            go.Scatter(
                x=[configs.loc[pick, "top1"]], y=[configs.loc[pick, "cmap"]], mode="markers",
                name=f"overall pick ({how})",
                marker=dict(size=20, color="gold", symbol="star", line=dict(width=1)),
            )
        )  # fmt: skip
    if raw is not None:
        fig.add_trace(
            go.Scatter(
                x=[raw[0]], y=[raw[1]], mode="markers+text", name="raw data", text=["raw"],
                textposition="bottom center",
                marker=dict(size=13, symbol="star", color="#d62728"),
            )
        )  # fmt: skip
    _axes_over(fig, configs, raw)
    fig.update_layout(
        title="Every anonymizer family on one front (right and down is better)",
        xaxis_title="action Top-1 (higher is better)",
        yaxis_title="privacy cMAP (lower is better)",
        template="plotly_white",
    )
    return fig


def metric_lines(
    df: pd.DataFrame, x: str, title: str, references: dict[str, float] | None = None
) -> go.Figure:
    """Mean (± std over seeds) of top1, cmap and f1 against ``x`` (Figure 3, Table 3).
    ``references`` (name -> x) draws labelled vertical lines, e.g. the RMS cost of reference
    edits on a B axis."""
    fig = go.Figure()
    g = df.groupby(x)
    for m in SCORES:
        if m not in df:
            continue
        mean, std = g[m].mean(), g[m].std().fillna(0.0)
        fig.add_trace(
            go.Scatter(
                x=mean.index,
                y=mean.values,
                mode="lines+markers",
                name=m,
                error_y=dict(type="data", array=std.values, visible=True),
            )
        )
        raw = f"raw_{m}"
        if raw in df and df[raw].notna().any():
            fig.add_hline(
                y=float(df[raw].mean()),
                line_dash="dot",
                annotation_text=f"raw {m}",
                annotation_position="top left",
            )
    for name, at in (references or {}).items():
        fig.add_vline(
            x=at, line_dash="dash", line_color="grey", annotation_text=name,
            annotation_position="bottom right", annotation_textangle=-90,
        )  # fmt: skip
    fig.update_layout(title=title, xaxis_title=x, yaxis_title="metric", template="plotly_white")
    return fig


def parallel_coordinates(
    df: pd.DataFrame, columns: list[str], constants: Mapping[str, str] | None = None
) -> go.Figure:
    """One axis per column of ``columns``; ``constants`` (the columns that never vary, with
    their value) are said once, under the title, instead of taking an axis each."""
    dims = []
    for c in columns:
        v = df[c]
        if pd.api.types.is_numeric_dtype(v):
            dims.append(dict(label=c, values=v.astype(float)))
        else:
            codes, names = pd.factorize(v.astype(str))
            dims.append(
                dict(label=c, values=codes, tickvals=list(range(len(names))), ticktext=list(names))
            )
    color = df["cmap"].astype(float) if "cmap" in df else None
    fig = go.Figure(
        go.Parcoords(
            dimensions=dims,
            line=dict(color=color, colorscale="Viridis", showscale=color is not None),
        )
    )
    title = "Parameters and metrics that vary (colour: cMAP)"
    if constants:
        same = ", ".join(f"{k} = {v}" for k, v in constants.items())
        title += "<br><sup>the same in every trial: " + "<br>".join(_wrap(same, 120)) + "</sup>"
    fig.update_layout(title=title, margin=dict(t=120))
    return fig


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]


def hypervolume_plot(curve: pd.Series) -> go.Figure:
    fig = go.Figure(go.Scatter(x=list(curve.index), y=curve.values, mode="lines+markers"))
    fig.update_layout(
        title="Hypervolume against trials completed",
        xaxis_title="trials",
        yaxis_title="hypervolume",
        template="plotly_white",
    )
    return fig


def write_figure(fig: go.Figure, stem: Path, png: bool = True) -> list[Path]:
    """``stem``.html, self-contained (plotly.js embedded, no CDN), and ``stem``.png."""
    html = stem.with_suffix(".html")
    fig.write_html(html, include_plotlyjs=True, full_html=True)
    out = [html]
    if png:
        fig.write_image(stem.with_suffix(".png"), width=1000, height=650)
        out.append(stem.with_suffix(".png"))
    return out
