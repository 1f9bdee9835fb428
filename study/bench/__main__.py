"""``python -m study.bench {speed,quality,search,ratios,load} [flags]``: one entry for the benches.

Each subcommand's flags are derived from its plan dataclass (:mod:`trainables.flags`), so a flag
means one thing in every bench that has it. Without a subcommand, ``speed`` runs (the GPU check
calls ``python -m study.bench --scale paper --device cuda``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from study.bench import load, markdown, quality, ratios, search, speed
from trainables.flags import add_flags


@dataclass(frozen=True)
class Bench:
    plan: type
    run: Callable[[Any, Callable[[str], None]], int]


#: The benches by the name users give on the command line.
BENCHES: dict[str, Bench] = {
    "speed": Bench(speed.SpeedPlan, speed.main),
    "quality": Bench(quality.QualityPlan, quality.main),
    "search": Bench(search.SearchPlan, search.main),
    "ratios": Bench(ratios.RatiosPlan, ratios.main),
    "load": Bench(load.LoadPlan, load.main),
}
#: Flags of the bench's first CLI, each now a subcommand.
_OLD = {f"--{name}": name for name in BENCHES}


def headline(plan: type) -> str:
    """A bench's question or purpose: its plan's docstring up to the first '?' or ':'."""
    doc = " ".join((plan.__doc__ or "").split())
    first = doc.split("? ")[0].split(": ")[0]
    return first + ("?" if doc.startswith(first + "?") else "")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m study.bench", description=__doc__.split("\n")[0], allow_abbrev=False
    )
    sub = p.add_subparsers(dest="bench", metavar="{" + ",".join(BENCHES) + "}")
    for name, bench in BENCHES.items():
        doc = " ".join((bench.plan.__doc__ or "").split())
        sp = sub.add_parser(name, help=headline(bench.plan), description=doc, allow_abbrev=False)
        defaults = {f.name: f.default for f in fields(bench.plan)}
        add_flags(sp, bench.plan, defaults=defaults, repeat=("set",))
        sp.add_argument(
            "--markdown",
            default="",
            metavar="FILE",
            help="also write the tables to FILE as markdown, headed by the date, the commit, the "
            "machine and this command (a bench that reuses its records rewrites it in seconds)",
        )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    old = [a for a in argv if a in _OLD]
    if old:
        print(
            f"error: {old[0]} is now a subcommand: python -m study.bench {_OLD[old[0]]} [flags]",
            file=sys.stderr,
        )
        return 2
    if not argv or argv[0] not in BENCHES and argv[0] not in ("-h", "--help"):
        argv = ["speed", *argv]
    args = build_parser().parse_args(argv)
    bench = BENCHES[args.bench]
    values = {f.name: getattr(args, f.name) for f in fields(bench.plan)}
    if "set" in values:
        values["set"] = tuple(values["set"] or ())
    plan = bench.plan(**values)
    if not args.markdown:
        return bench.run(plan, speed.log)
    title = f"study.bench {args.bench}: {headline(bench.plan)}"
    return markdown.run_to_markdown(
        lambda: bench.run(plan, speed.log), Path(args.markdown), title, argv
    )


if __name__ == "__main__":
    sys.exit(main())
