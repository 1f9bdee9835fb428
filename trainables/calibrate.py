"""``python -m trainables.calibrate --dataset NAME``: the RMS cost of reference edits on a
dataset's action test clips (:mod:`trainables.evaluation.calibration`), as a table and one JSON line.

Takes the trial flags (``--scale``, ``--size``, ``--frames``, the dataset roots, ...), so it
measures the clips a trial of that config would see.
"""

from __future__ import annotations

import argparse
import json
import sys

from trainables.config import SCALES, STUDY_SCALE, TrialConfig, config_for
from trainables.flags import add_flags, overrides_from_args, scale_in
from trainables.log import usage_error


def build_parser(scale: str = STUDY_SCALE) -> argparse.ArgumentParser:
    """The CLI; each flag's help shows the value that ``scale`` gives it."""
    p = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m trainables.calibrate",
        description="Print what reference edits cost in RMS(X - edit(X)) on the action test "
        "clips, and in the feature-based penalty's space (the warm-started f_T's features, "
        "whose stage trains first), so that you see which bounds B can bind.",
    )
    p.add_argument(
        "--scale",
        default=STUDY_SCALE,
        choices=sorted(SCALES),
        help="named scale (the default is a study's, so the table is the one a study records)",
    )
    add_flags(p, TrialConfig, exclude=("scale",), scale=scale)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser(scale_in(argv, STUDY_SCALE)).parse_args(argv)
    from trainables.catalog import validate
    from trainables.config import ConfigError

    try:
        cfg = config_for(args.scale, **overrides_from_args(args))
        validate(cfg)
        from trainables.data.load import load_data
        from trainables.evaluation.calibration import costs_on, table
        from trainables.stages import compute_init, feature_calibration

        def log(m: str) -> None:
            print(m, file=sys.stderr, flush=True)

        data = load_data(cfg, log)
        costs = costs_on(data, cfg)
        # The feature space is the warm-started f_T's: its stage trains first.
        features = feature_calibration(cfg, data, compute_init(cfg, data, log))
    except (ConfigError, ValueError) as e:
        return usage_error(e)
    print(table(costs, features))
    top = costs["flatten"]["mean"]
    print(
        f"\nA bound B >= {top:.3f} (the mean cost of flattening every clip) allows erasing every "
        "clip: it restrains f_A only from recolouring at a higher cost."
    )
    if features:
        print(
            "With --penalty-on action_features, B bounds the feature distance instead: a bound "
            "above an edit's mean feature distance lets f_A go at least that far."
        )
    record = {"dataset": cfg.dataset, "size": cfg.size, "frames": cfg.frames, **costs}
    print(json.dumps(record | {"features": features}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
