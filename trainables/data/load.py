"""The registry of datasets and protocols by name: each builds the :class:`TrialData` of a
config. ``python -m trainables.data`` checks a real dataset (:mod:`trainables.data.datasets.check`).
"""

from __future__ import annotations

from collections.abc import Callable

from trainables.config import TrialConfig
from trainables.data.datasets.protocols import PROTOCOLS, build_protocol
from trainables.data.sets import TrialData
from trainables.data.synthetic import HFLIP_ACTIONS, SyntheticSpec, make_benchmark
from trainables.log import Log
from trainables.registry import Registry

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


#: The most memory that rendering the synthetic benchmark may take (its largest set, float32).
SYNTHETIC_RENDER_LIMIT = 6 * 2**30


def synthetic_render_bytes(cfg: TrialConfig) -> int:
    """Peak memory of rendering the largest synthetic set: float32 RGB frames, about four live
    temporaries of that size, plus the uint8 copies of every set."""
    largest = max(cfg.n_action_train, cfg.n_action_test, cfg.n_privacy_train, cfg.n_privacy_test)
    frame = 3 * cfg.size * cfg.size
    render = largest * cfg.frames * frame * 4 * 4
    stored = (cfg.n_action_train + cfg.n_action_test) * cfg.frames * frame
    stored += (cfg.n_privacy_train + cfg.n_privacy_test) * frame
    return render + stored


def render_problem(cfg: TrialConfig) -> str | None:
    """Why the synthetic benchmark cannot be rendered at ``cfg``'s sizes, or None (a rule of
    :func:`trainables.config.validate`, checked before any work starts)."""
    if not cfg.dataset.startswith("synthetic"):
        return None
    need = synthetic_render_bytes(cfg)
    if need <= SYNTHETIC_RENDER_LIMIT:
        return None
    return (
        f"the synthetic benchmark at --size {cfg.size} --frames {cfg.frames} with "
        f"{max(cfg.n_action_train, cfg.n_action_test, cfg.n_privacy_train, cfg.n_privacy_test)} "
        f"samples per set needs about {need / 2**30:.1f} GiB to render (limit "
        f"{SYNTHETIC_RENDER_LIMIT / 2**30:.0f} GiB); lower --size, --frames or the --n-* "
        f"sizes (the paper scale is meant for real datasets)"
    )
