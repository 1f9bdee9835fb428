"""``python -m analysis.report --experiment NAME``: the report for choosing B.

Writes ``report.html`` (every plot and table, top to bottom), ``trials.csv`` (one row per
trial, with ``on_front``), ``configurations.csv`` (one row per configuration: mean and std over
seeds) and ``summary.md`` (warnings, the recommendation, Table 1 style), plus each plot as
self-contained HTML and PNG. (``python -m study.report`` also logs them to the study's parent
run.)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from analysis.render import write_report
from analysis.summary import ReportData, analyse, only_family


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


#: Where the `mlflow ui` command that the launcher prints for a finished study serves it: the
#: server that a report read from the study's SQLite store tells its users to download from.
UI_PORT = 5000
UI_URI = f"http://127.0.0.1:{UI_PORT}"


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
    ``uri`` when it is a server, else the `mlflow ui` at ``UI_URI``)."""
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
    # A store read directly needs a server to download from: the `mlflow ui` one.
    http = served_at or (uri if uri.startswith("http") else UI_URI)
    paths = write_report(
        df,
        out,
        f"Study {experiment}" + (f" ({family} family)" if family else ""),
        png=png,
        references=record.calibration,
        feature_references=record.feature_calibration,
        chance=record.chance,
        hv_reference=hv_reference,
        parent=record.run_id,
        tracking_uri=http,
        data=data,
        searched=record.searched,
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
