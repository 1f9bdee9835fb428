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
from typing import Any

from study.bench import load, quality, ratios, search, speed
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m study.bench", description=__doc__.split("\n")[0], allow_abbrev=False
    )
    sub = p.add_subparsers(dest="bench", metavar="{" + ",".join(BENCHES) + "}")
    for name, bench in BENCHES.items():
        doc = " ".join((bench.plan.__doc__ or "").split())
        sp = sub.add_parser(name, help=doc.split("? ")[0].split(": ")[0], description=doc,
                            allow_abbrev=False)  # fmt: skip
        defaults = {f.name: f.default for f in fields(bench.plan)}
        add_flags(sp, bench.plan, defaults=defaults, repeat=("set",))
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
    return bench.run(bench.plan(**values), speed.log)


if __name__ == "__main__":
    sys.exit(main())
