"""Tables 5, 7 and 8 of the paper: one learned f_A* scored by several fresh target models.

A trial evaluated with ``eval_action_models``/``eval_privacy_models`` records ``top1/<model>``,
``cmap/<model>`` and ``f1/<model>`` with their ``mean`` and ``worst``, and its raw reference the
same under ``raw_``. Pure functions of the trials DataFrame.
"""

from __future__ import annotations

import re

import pandas as pd

from analysis import markdown
from analysis.recommend import config_columns

#: A per-model metric column: (raw_)?metric/model.
PER_MODEL = re.compile(r"^(raw_)?(top1|cmap|f1)/(.+)$")
#: The summaries over models, listed after the models themselves.
SUMMARIES = ("mean", "worst")


def is_per_model(column: str) -> bool:
    return bool(PER_MODEL.match(column))


#: The config columns that name each metric's first fresh model (the trial's own f_T', f_B').
_FIRST = {
    "top1": ("eval_action_model", "action_model"),
    "cmap": ("eval_privacy_model", "privacy_model"),
}


def _first_model(df: pd.DataFrame, metric: str) -> str:
    for col in _FIRST[metric]:
        if col in df:
            named = [str(v) for v in df[col].dropna() if str(v)]
            if named:
                return named[0]
    return ""


def models_of(df: pd.DataFrame, metric: str) -> list[str]:
    """The fresh models that scored ``metric``: the trials' own f_T' (or f_B') first, the
    others in name order, then ``mean`` and ``worst``."""
    names = set()
    for c in df.columns:
        m = PER_MODEL.match(c)
        if m and not m.group(1) and m.group(2) == metric and m.group(3) not in SUMMARIES:
            names.add(m.group(3))
    if not names:
        return []
    first = _first_model(df, metric)
    ordered = sorted(names, key=lambda n: (n != first, n))
    return [*ordered, *[s for s in SUMMARIES if f"{metric}/{s}" in df]]


def _label(keys: list[str], values: tuple, varying: set[str]) -> str:
    """A configuration's column name by the config columns that vary, e.g. ``B=0.1``."""
    parts = []
    for k, v in zip(keys, values, strict=True):
        if k in varying:
            parts.append(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(parts) or "anonymized"


def robustness_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (metric, fresh model): the raw reference and, per configuration (mean over
    seeds), the score of its f_A*; empty when no trial was evaluated by several models."""
    keys = config_columns(df)
    varying = {k for k in keys if df[k].nunique(dropna=False) > 1}
    groups = list(df.groupby(keys, dropna=False, sort=True)) if keys else [((), df)]
    rows = []
    for metric in ("top1", "cmap"):
        for model in models_of(df, metric):
            row: dict[str, object] = {"metric": metric, "model": model}
            raw = f"raw_{metric}/{model}"
            row["raw"] = float(df[raw].mean()) if raw in df else float("nan")
            for values, g in groups:
                values = values if isinstance(values, tuple) else (values,)
                row[_label(keys, values, varying)] = float(g[f"{metric}/{model}"].mean())
            rows.append(row)
    return pd.DataFrame(rows)


def robustness_markdown(table: pd.DataFrame) -> list[str]:
    """The table as Markdown lines (none when it is empty)."""
    if table.empty:
        return []
    cols = list(table.columns)
    lines = [
        "## Across fresh target models (Tables 5/7/8: one f_A* per configuration)",
        "",
        "Top-1 (higher is better for utility) and cMAP (lower is better for privacy) of each "
        "fresh model, on raw data and on each configuration's anonymized data; `worst` is the "
        "lowest Top-1 and the highest cMAP.",
        "",
        *markdown.table(
            cols,
            ([f"{v:.4f}" if isinstance(v, float) else v for v in r] for _, r in table.iterrows()),
        ),
    ]
    return [*lines, ""]
