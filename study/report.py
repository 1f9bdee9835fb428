"""``python -m study.report --experiment NAME``: write a study's report (:mod:`analysis.report`)
from its MLflow records and log it to the study's parent run, as the launcher does at the end."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from analysis.report import build_parser, options, report_from_mlflow, source_and_out
from study.tracking import client as tracking
from study.tracking import parent as parent_run
from study.tracking.chosen import log_chosen
from trainables.log import usage_error


def write_and_log(
    experiment: str,
    uri: str,
    out: Path,
    *,
    parent: str = "",
    png: bool = True,
    hv_reference: dict[str, float] | None = None,
    log: Callable[[str], None] = print,
    served_at: str = "",
    family: str = "",
) -> list[Path]:
    """Write the report of one study of ``experiment`` (``parent``, else the newest) into
    ``out``, log it to the study's parent run and log the chosen anonymizer as an MLflow model;
    return the files, report.html first. ``served_at``: the server the text names (default
    ``uri``)."""
    paths, run_id, data = report_from_mlflow(
        experiment,
        uri,
        out,
        png=png,
        parent=parent,
        hv_reference=hv_reference,
        served_at=served_at,
        family=family,
    )
    c = tracking.client(uri)
    parent_run.log_report(c, run_id, paths, "report-" + family if family else "report")
    if data.rec.run_id:
        try:
            model = log_chosen(c, uri, run_id, data.rec.run_id)
            log(f"[report] chosen run {data.rec.run_id}; its anonymizer is the model {model}")
        except Exception as e:
            log(f"[report] the chosen anonymizer could not be logged as a model: {e}")
    return paths


def main(argv: list[str] | None = None) -> int:
    p = build_parser("python -m study.report")
    p.description = "Write a study's report from its MLflow records and log it to the study's "
    p.description += "parent run (the tracking server's URI, http://...)."
    args = p.parse_args(argv)
    if not args.tracking_uri.startswith("http"):
        print(
            "error: --tracking-uri: give the study's MLflow server, http://HOST:PORT",
            file=sys.stderr,
        )
        return 2
    try:
        uri, out = source_and_out(args)
        paths = write_and_log(args.experiment, uri, out, **options(args))
    except ValueError as e:
        return usage_error(e)
    print(f"report: {paths[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
