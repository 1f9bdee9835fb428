"""The registry of datasets and protocols by name: each builds the :class:`TrialData` of a
config. ``python -m trainables.data`` checks a real dataset (:mod:`trainables.datasets.check`).
"""

from __future__ import annotations

from collections.abc import Callable

from trainables.config import TrialConfig
from trainables.datasets.protocols import PROTOCOLS, build_protocol
from trainables.log import Log
from trainables.registry import Registry
from trainables.sets import TrialData
from trainables.synthetic import HFLIP_ACTIONS, SyntheticSpec, make_benchmark

DATASETS: Registry[TrialData] = Registry("dataset")


def _synthetic_spec(cfg: TrialConfig) -> SyntheticSpec:
    return SyntheticSpec(
        size=cfg.size,
        frames=cfg.frames,
        n_action_train=cfg.n_action_train,
        n_action_test=cfg.n_action_test,
        n_privacy_train=cfg.n_privacy_train,
        n_privacy_test=cfg.n_privacy_test,
        seed=cfg.data_seed,
    )


@DATASETS.register("synthetic", "built-in benchmark; privacy scored on the privacy image set")
def synthetic(cfg: TrialConfig, log: Log = print) -> TrialData:
    b = make_benchmark(_synthetic_spec(cfg))
    return TrialData(
        b.action_train,
        b.action_test,
        b.privacy_train,
        b.privacy_test,
        b.actions,
        b.attributes,
        privacy_scored_on="images",
        hflip_labels=HFLIP_ACTIONS,
    )


@DATASETS.register(
    "synthetic-vp",
    "built-in benchmark; privacy scored on the action clips' "
    "attribute labels (same-dataset, like VP-HMDB)",
)
def synthetic_vp(cfg: TrialConfig, log: Log = print) -> TrialData:
    data = synthetic(cfg, log)
    data.privacy_scored_on = "clips"
    return data


def _protocol_builder(name: str) -> Callable[..., TrialData]:
    def build(cfg: TrialConfig, log: Log = print) -> TrialData:
        return build_protocol(name, cfg, log)

    return build


for _name, _proto in PROTOCOLS.items():
    DATASETS.register(_name, f"paper protocol ({_proto.description})")(_protocol_builder(_name))


def load_data(cfg: TrialConfig, log: Log | None = None) -> TrialData:
    """Load the dataset or protocol named by ``cfg.dataset``."""
    return DATASETS.build(cfg.dataset, cfg=cfg, log=log or print)


def main(argv: list[str] | None = None) -> int:
    from trainables.datasets.check import main as check_main

    return check_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
