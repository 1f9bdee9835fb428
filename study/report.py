"""``python -m study.report --experiment NAME``: write a study's report (:mod:`analysis.report`)
from its MLflow records and log it to the study's parent run, as the launcher does at the end."""

from __future__ import annotations

import sys
from pathlib import Path

from analysis.report import build_parser, report_from_mlflow, source_and_out
from study import parent as parent_run
from study import tracking


def write_and_log(
    experiment: str, uri: str, out: Path, *, parent: str | None = None, png: bool = True
) -> list[Path]:
    """Write the report of ``experiment``'s trials into ``out`` and log it to the study's parent
    run (``parent``, else the one the tracking server has); return the files, report.html
    first."""
    paths = report_from_mlflow(experiment, uri, out, png=png)
    c = tracking.client(uri)
    run_id = parent or parent_run.find_parent(c, experiment)
    if run_id is not None:
        parent_run.log_report(c, run_id, paths)
    return paths


def main(argv: list[str] | None = None) -> int:
    p = build_parser("python -m study.report")
    p.description = "Write a study's report from its MLflow records and log it to the study's "
    p.description += "parent run (the tracking server's URI, http://...)."
    args = p.parse_args(argv)
    uri, out = source_and_out(args)
    if not uri.startswith("http"):
        print(
            "error: --tracking-uri: give the study's MLflow server, http://HOST:PORT",
            file=sys.stderr,
        )
        return 2
    try:
        paths = write_and_log(args.experiment, uri, out, png=not args.no_png)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"report: {paths[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
