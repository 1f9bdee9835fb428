"""Run one trial without Ray: ``python -m trainables.run --scale smoke --B 0.3 --lam 1.0``.

Progress goes to stderr; the last line on stdout is one JSON object with the trial's metrics.
"""

from __future__ import annotations

import argparse
import json
import sys

from trainables.config import SCALES, TrialConfig, config_for
from trainables.flags import add_flags, overrides_from_args, scale_in
from trainables.log import usage_error


def build_parser(scale: str = "smoke") -> argparse.ArgumentParser:
    """The CLI; each flag's help shows the value that ``scale`` gives it."""
    p = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m trainables.run",
        description="Run one penalty-driven anonymization trial (identity init, minimax, "
        "evaluation with fresh target models) and print its metrics as JSON.",
    )
    p.add_argument(
        "--scale",
        default="smoke",
        choices=sorted(SCALES),
        help="named scale that fills every unset flag (default: smoke)",
    )
    p.add_argument(
        "--list",
        action="store_true",
        help="list the registered datasets, anonymizers and models, then exit",
    )
    p.add_argument("--quiet", action="store_true", help="print only the final JSON line")
    add_flags(p, TrialConfig, exclude=("scale",), scale=scale)
    return p


def _list() -> None:
    from trainables.catalog import REGISTRIES

    for reg in REGISTRIES:
        print(f"{reg.kind}s:")
        for name in reg.names():
            print(f"  {name:<16} {reg.describe(name)}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser(scale_in(argv)).parse_args(argv)
    if args.list:
        _list()
        return 0
    from trainables.catalog import validate
    from trainables.config import ConfigError
    from trainables.trial import run_trial

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    try:
        cfg = config_for(args.scale, **overrides_from_args(args))
        validate(cfg)
        result = run_trial(cfg, log=log)
    except (ConfigError, ValueError) as e:
        return usage_error(e)
    print(json.dumps(result.summary()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
