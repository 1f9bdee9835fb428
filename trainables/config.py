"""The trial configuration: one typed dataclass whose field metadata is the single source of
every field's help, valid values and stage.

From that metadata come the CLI flags (:func:`trainables.flags.add_flags`, also used for the
study's own config),
the typed parsing of ``--set KEY=VALUE`` and of Ray/MLflow dicts (:func:`parse_value`),
:func:`validate`, and the keys of the cached shared stages (:mod:`trainables.game.keys`). A field
declares the stage(s) of a trial whose result it changes:

- ``data``: which samples and pixels the trial sees;
- ``identity``: the identity initialisation of f_A;
- ``warm``: the warm start of f_T and f_B (it runs after the identity stage, on the same random
  stream, so it depends on it);
- ``evaluation``: how the fresh f_T' and f_B' train and score (the raw reference is the
  evaluation of the identity anonymizer);
- ``game``: the minimax game (B, lambda, the seed);
- ``runtime``: where and how fast, not what: in no key.

This module imports nothing from ``trainables``: names that live in registries (models,
datasets, augmentation policies) are checked against the registries the caller passes
(:func:`trainables.catalog.validate` passes all of them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from trainables.families import knob_owners

#: What the penalty can bound (``penalty_on``): f_A's change in pixels, or in the features of
#: the warm-started action model.
PENALTY_SPACES = ("pixels", "action_features")

#: Each stage and the stages whose output it starts from.
UPSTREAM: dict[str, tuple[str, ...]] = {
    "data": (),
    "identity": ("data",),
    "warm": ("identity",),
    "evaluation": ("data",),
    "game": ("warm",),
    "runtime": (),
}
STAGES = tuple(UPSTREAM)


@dataclass(frozen=True)
class Spec:
    """What a field accepts: bounds (``min``/``max`` inclusive, ``gt`` strict), a fixed set of
    ``choices``, or a name in the registry of kind ``registry`` (``optional``: '' allowed)."""

    min: float | None = None
    gt: float | None = None
    max: float | None = None
    why: str = ""
    choices: tuple[Any, ...] = ()
    registry: str = ""
    optional: bool = False
    #: The value is comma-separated names of ``registry`` ('' for none).
    many: bool = False

    def problem(self, flag: str, value: Any, registries: Mapping[str, Collection[str]]) -> str:
        """What is wrong with ``value``, or ''."""
        if self.registry and self.many:
            known = registries[self.registry]
            bad = [v for v in split_names(value) if v not in known]
            if not bad:
                return ""
            return (
                f"{flag}: unknown {self.registry} {', '.join(map(repr, bad))}; valid: "
                f"{', '.join(sorted(known))}"
            )
        if self.registry:
            if self.optional and value == "":
                return ""
            known = registries[self.registry]
            if value in known:
                return ""
            return f"{flag}: unknown {self.registry} {value!r}; valid: {', '.join(sorted(known))}"
        if self.choices:
            if value in self.choices:
                return ""
            return f"{flag} must be one of {', '.join(map(str, self.choices))}, got {value!r}"
        lo_ok = (self.min is None or value >= self.min) and (self.gt is None or value > self.gt)
        hi_ok = self.max is None or value <= self.max
        if lo_ok and hi_ok:
            return ""
        why = f" ({self.why})" if self.why else ""
        if self.max is not None:
            lo = f"[{self.min:g}" if self.min is not None else f"({self.gt:g}"
            return f"{flag} must lie in {lo}, {self.max:g}]{why}, got {value}"
        bound = f">= {self.min:g}" if self.min is not None else f"> {self.gt:g}"
        return f"{flag} must be {bound}{why}, got {value}"


def split_names(value: str) -> list[str]:
    """``"a, b,,c"`` as ``["a", "b", "c"]``: a comma-separated list field."""
    return [v.strip() for v in str(value).split(",") if v.strip()]


def param(
    default: Any,
    help: str,
    *,
    stage: str | tuple[str, ...],
    neutral: bool = False,
    only_for: str = "",
    read_when: Mapping[str, Any] | None = None,
    **spec: Any,
) -> Any:
    """A config field: its default, help text, stage(s) and what values it accepts.

    ``neutral``: the default reproduces what trials computed before the field existed, and a
    field at that value is left out of every key (:mod:`trainables.game.keys`), so adding it keeps
    the keys of cached shared stages and of stored results valid. Every field added after the
    first release declares it, or ``only_for``.

    ``read_when``: the field is read only when these other fields have these values (the L1
    identity stage's epochs only when ``anon_init`` is ``l1``); the keys of every other
    trial leave it out, whatever its value. ``only_for`` names the one anonymizer that reads
    the field: ``read_when={"anonymizer": only_for}``."""
    stages = (stage,) if isinstance(stage, str) else tuple(stage)
    unknown = [s for s in stages if s not in UPSTREAM]
    if not stages or unknown:
        raise ValueError(f"a config field needs stages among {STAGES}, got {stages}")
    meta = {"help": help, "stages": stages, "spec": Spec(**spec)}
    if neutral:
        meta["neutral"] = default
    when = {**(read_when or {}), **({"anonymizer": only_for} if only_for else {})}
    if when:
        meta["read_when"] = when
    return field(default=default, metadata=meta)


def neutral_fields() -> dict[str, Any]:
    """Fields left out of the keys at their neutral value: name -> that value."""
    return {f.name: f.metadata["neutral"] for f in fields(TrialConfig) if "neutral" in f.metadata}


def read_when_fields() -> dict[str, dict[str, Any]]:
    """Fields read only under a condition: name -> the values other fields must have."""
    return {
        f.name: f.metadata["read_when"] for f in fields(TrialConfig) if "read_when" in f.metadata
    }


def only_for_fields() -> dict[str, str]:
    """Fields that one anonymizer alone reads: name -> that anonymizer."""
    return {k: w["anonymizer"] for k, w in read_when_fields().items() if "anonymizer" in w}


def is_read(cfg: TrialConfig, name: str) -> bool:
    """Whether a trial of ``cfg`` reads field ``name`` (its ``read_when`` holds)."""
    when = read_when_fields().get(name, {})
    return all(getattr(cfg, k) == v for k, v in when.items())


def help_field(default: Any, help: str, choices: tuple[Any, ...] = ()) -> Any:
    """A field of a config that has no stages (the study's): its default, help text and, when
    only some values are valid, their ``choices``."""
    return field(default=default, metadata={"help": help, "choices": choices})


_f = param
_DATA, _ID, _WARM, _EVAL, _GAME, _RUN = STAGES
#: The anonymizer that alone reads the tubelet fields (``only_for``).
_TUBELET = "tubelet_prune"
#: The anonymizer that alone reads the min_* fields (its presets fix their own operators).
_MINIMIZE = "minimize"


@dataclass(frozen=True)
class TrialConfig:
    """Everything one trial needs. Defaults are the ``smoke`` scale."""

    scale: str = _f("smoke", "named scale whose defaults fill every unset field", stage=_RUN)
    dataset: str = _f("synthetic", "dataset or protocol name", stage=_DATA, registry="dataset")
    B: float = _f(
        0.3,
        "penalty bound B on RMS(X - f_A(X)) of action inputs (or, with penalty_on="
        "action_features, on their relative feature distance), in [0, 1]",
        stage=_GAME,
        min=0.0,
        max=1.0,
        why="an RMS of pixels in [0, 1], or a relative distance",
    )
    lam: float = _f(1.0, "penalty weight lambda_penalty, >= 0", stage=_GAME, min=0.0)
    penalty_on: str = _f(
        "pixels",
        "what the penalty bounds: 'pixels' (Eq. 4 and the released code: RMS(X - f_A(X)) <= B) "
        "or 'action_features' (the paper's feature-based form: ||phi(X) - phi(f_A(X))|| / "
        "||phi(X)|| <= B, phi the penultimate features of the warm-started f_T, frozen for the "
        "game)",
        stage=_GAME,
        neutral=True,
        choices=PENALTY_SPACES,
    )
    seed: int = _f(0, "seed of model initialisation and training order", stage=_GAME)
    data_seed: int = _f(0, "seed of the synthetic benchmark and of the shared stages", stage=_DATA)
    # Models.
    anonymizer: str = _f(
        "unetpp_tiny",
        "anonymizer f_A (learned or a fixed baseline)",
        stage=_ID,
        registry="anonymizer",
    )
    anon_encoder: str = _f("mobilenet_v2", "encoder of a learned anonymizer (smp name)", stage=_ID)
    # The tubelet_prune family (trainables/models/tubelet.py): a video ViT scores tubelets; the scorer
    # trains in the identity stage (shared by every keep_ratio), keep_ratio is the knob.
    keep_ratio: float = _f(
        0.5,
        "tubelet_prune: fraction of tubelets kept (top-k by score), in (0, 1]; 1 keeps the input",
        stage=_GAME,
        gt=0.0,
        max=1.0,
        only_for=_TUBELET,
    )
    tubelet_frames: int = _f(
        2, "tubelet_prune: frames per tubelet (t)", stage=_ID, min=1, only_for=_TUBELET
    )
    tubelet_size: int = _f(
        4,
        "tubelet_prune: tubelet height and width in pixels (p)",
        stage=_ID,
        min=1,
        only_for=_TUBELET,
    )
    vit_dim: int = _f(48, "tubelet_prune: ViT width", stage=_ID, min=8, only_for=_TUBELET)
    vit_depth: int = _f(2, "tubelet_prune: ViT blocks", stage=_ID, min=1, only_for=_TUBELET)
    vit_heads: int = _f(
        3, "tubelet_prune: ViT attention heads", stage=_ID, min=1, only_for=_TUBELET
    )
    tubelet_epochs: int = _f(
        20,
        "tubelet_prune: epochs training the ViT scorer (action CE on the action token, NT-Xent "
        "on the privacy token)",
        stage=_ID,
        min=0,
        only_for=_TUBELET,
    )
    tubelet_privacy_weight: float = _f(
        0.25,
        "tubelet_prune: weight of the privacy token's NT-Xent against the action CE in the "
        "scorer's loss",
        stage=_ID,
        gt=0.0,
        only_for=_TUBELET,
    )
    tubelet_lr: float = _f(
        1e-3, "tubelet_prune: learning rate of the ViT scorer", stage=_ID, gt=0.0, only_for=_TUBELET
    )
    # The minimize family (trainables/models/minimize.py): composable breadth and depth reductions.
    min_resolution: float = _f(
        1.0,
        "minimize (breadth): spatial resolution kept, as a fraction of the side, in (0, 1]",
        stage=_GAME,
        gt=0.0,
        max=1.0,
        neutral=True,
        only_for=_MINIMIZE,
    )
    min_frame_step: int = _f(
        1,
        "minimize (breadth): keep every n-th frame, holding it in between (frame rate / n)",
        stage=_GAME,
        min=1,
        neutral=True,
        only_for=_MINIMIZE,
    )
    min_crop: float = _f(
        1.0,
        "minimize (breadth): side of the window kept around the moving region, as a fraction "
        "of the frame's, in (0, 1]; the rest takes the clip's mean colour",
        stage=_GAME,
        gt=0.0,
        max=1.0,
        neutral=True,
        only_for=_MINIMIZE,
    )
    min_bits: int = _f(
        8, "minimize (depth): bits per colour channel, 1-8", stage=_GAME, min=1, max=8,
        neutral=True,
        only_for=_MINIMIZE,
    )  # fmt: skip
    min_grey: bool = _f(
        False, "minimize (depth): greyscale", stage=_GAME, neutral=True, only_for=_MINIMIZE
    )
    min_blur: float = _f(
        0.0,
        "minimize (depth): Gaussian blur sigma as a fraction of the frame width (0: none)",
        stage=_GAME,
        min=0.0,
        max=1.0,
        neutral=True,
        only_for=_MINIMIZE,
    )
    # f_T and f_B are the fresh f_T' and f_B' too unless eval_* name others.
    action_model: str = _f(
        "c3d_tiny",
        "action model f_T used in the minimax game",
        stage=(_WARM, _EVAL),
        registry="action model",
    )
    privacy_model: str = _f(
        "resnet8_full",
        "privacy model f_B used in the minimax game",
        stage=(_WARM, _EVAL),
        registry="privacy model",
    )
    eval_action_model: str = _f(
        "",
        "fresh action model f_T' for evaluation ('' = action_model)",
        stage=_EVAL,
        registry="action model",
        optional=True,
    )
    eval_privacy_model: str = _f(
        "",
        "fresh privacy model f_B' for evaluation ('' = privacy_model)",
        stage=_EVAL,
        registry="privacy model",
        optional=True,
    )
    eval_action_models: str = _f(
        "",
        "more fresh action models f_T' that evaluate the same f_A*, comma-separated (e.g. "
        "r3d_18,r2plus1d_18): top1/<model> for each and eval_action_model, their mean and "
        "worst; top1 stays eval_action_model's",
        stage=_EVAL,
        registry="action model",
        many=True,
    )
    eval_privacy_models: str = _f(
        "",
        "more fresh privacy models f_B' that evaluate the same f_A*, comma-separated (e.g. "
        "resnet18,resnet50): cmap/<model> and f1/<model> for each and eval_privacy_model, the "
        "mean and worst cMAP; cmap stays eval_privacy_model's",
        stage=_EVAL,
        registry="privacy model",
        many=True,
    )
    eval_privacy_weights: str = _f(
        "",
        "local weights for fresh f_B' models, MODEL=PATH comma-separated (e.g. "
        "resnet50=r50_imagenet.pt): each listed model (eval_privacy_model or one of "
        "eval_privacy_models) is also evaluated from these weights, its head replaced, as "
        "<model>_pretrained (Tables 7 and 8's pretrained columns)",
        stage=_EVAL,
    )
    # Data geometry and sizes.
    size: int = _f(32, "frame height and width in pixels", stage=_DATA, min=16)
    frames: int = _f(8, "frames per clip", stage=_DATA, min=2, why="to show motion")
    skip: int = _f(4, "frame skip when sampling clips from real videos", stage=_DATA, min=1)
    n_action_train: int = _f(192, "synthetic action clips for training", stage=_DATA, min=2)
    n_action_test: int = _f(96, "synthetic action clips for testing", stage=_DATA, min=2)
    n_privacy_train: int = _f(192, "synthetic privacy images for training", stage=_DATA, min=2)
    n_privacy_test: int = _f(96, "synthetic privacy images for testing", stage=_DATA, min=2)
    # Optimisation. The warm starts train with the evaluation's learning rates and batch size.
    batch_size: int = _f(16, "action clips per batch", stage=_ID, min=2)
    privacy_batch_size: int = _f(32, "privacy samples (pairs) per batch", stage=_ID, min=2)
    anon_init: str = _f(
        "residual",
        "how a learned f_A starts: 'residual' (sigmoid(logit(x) + net(x)) with the net's output "
        "layer zeroed: the identity by construction, within 1e-3, with no identity stage) or "
        "'l1' (sigmoid(net(x)) trained to reproduce x by L1 for identity_epochs, the paper's "
        "Eq. 5; never exactly the identity on saturated pixels)",
        stage=_ID,
        choices=("residual", "l1"),
    )
    anon_batch_norm: str = _f(
        "frozen",
        "batch norm of a learned f_A in the game: 'frozen' (statistics estimated on the raw "
        "training data before the game, then fixed, so the f_A the penalty bounds is the f_A "
        "that is evaluated) or 'batch' (the released code's: batch statistics in the step that "
        "trains f_A, which the evaluation's running statistics do not reproduce: the test RMS "
        "then exceeds what the penalty saw)",
        stage=(_ID, _GAME),
        choices=("frozen", "batch"),
    )
    identity_epochs: int = _f(
        3,
        "epochs of L1 identity initialisation of f_A (anon_init='l1')",
        stage=_ID,
        min=0,
        read_when={"anon_init": "l1"},
    )
    identity_lr: float = _f(
        1e-3,
        "learning rate of the L1 identity initialisation (anon_init='l1')",
        stage=_ID,
        gt=0.0,
        read_when={"anon_init": "l1"},
    )
    pretrain_action_epochs: int = _f(
        6,
        "epochs training f_T on raw clips before the game (stands in for Kinetics-400 weights)",
        stage=_WARM,
        min=0,
    )
    pretrain_privacy_epochs: int = _f(
        3,
        "epochs of SimCLR on raw privacy data before the game "
        "(stands in for self-supervised weights)",
        stage=_WARM,
        min=0,
    )
    minimax_epochs: int = _f(2, "epochs of the minimax game", stage=_GAME, min=0)
    w_action: float = _f(1.0, "weight of L_T in f_A's objective", stage=_GAME, min=0.0)
    w_privacy: float = _f(1.0, "weight of L_B in f_A's objective", stage=_GAME, min=0.0)
    privacy_clamp: bool = _f(
        False,
        "cap L_B at chance level, log(2N - 1), in f_A's objective: f_A gains nothing by "
        "pushing f_B past chance",
        stage=_GAME,
    )
    lr_anon: float = _f(1e-3, "learning rate of f_A in the game", stage=_GAME, gt=0.0)
    anon_beta2: float = _f(
        0.999,
        "Adam's beta2 for f_A in the game (how long one large gradient, such as the penalty's "
        "at a large lambda, keeps shrinking f_A's later steps)",
        stage=_GAME,
        neutral=True,
        gt=0.0,
        max=0.9999,
    )
    anon_grad_clip: float = _f(
        10.0,
        "clip the norm of f_A's gradient in the game to this (0: no clipping, the released "
        "code's). 10 is about the adversarial pull's size; the per-sample hinge at a large "
        "lambda spikes to 200-300 and, unclipped, throws f_A back to the identity "
        "(docs/benchmark-design.md)",
        stage=_GAME,
        min=0.0,
    )
    lr_action: float = _f(1e-3, "learning rate of f_T in the game", stage=_GAME, gt=0.0)
    lr_privacy: float = _f(1e-3, "learning rate of f_B in the game", stage=_GAME, gt=0.0)
    game_schedule: str = _f(
        "cosine",
        "learning-rate schedule of the game's three optimizers: 'cosine' (from lr_* down to 0 "
        "over the game's steps: the players' oscillation dies out, so the f_A that is "
        "evaluated is where the game settled, not a random phase of its cycle) or 'constant' "
        "(the released code's)",
        stage=_GAME,
        choices=("cosine", "constant"),
    )
    temperature: float = _f(0.1, "NT-Xent temperature", stage=_WARM, gt=0.0)
    positives: str = _f(
        "augment",
        "NT-Xent positives: 'augment' (two augmentations of one "
        "privacy image) or 'frames' (two frames frame_gap apart)",
        stage=_WARM,
        choices=("augment", "frames"),
    )
    frame_gap: int = _f(4, "frame distance of the positives when positives='frames'", stage=_WARM)
    eval_seed: int = _f(
        0,
        "seed of f_T' and f_B' (initialisation, batch order, augmentation): the raw reference "
        "and every trial share it, so their scores are a paired comparison",
        stage=_EVAL,
    )
    eval_action_epochs: int = _f(8, "epochs training the fresh f_T'", stage=_EVAL, min=1)
    eval_privacy_epochs: int = _f(4, "epochs training the fresh f_B'", stage=_EVAL, min=1)
    eval_lr_action: float = _f(
        3e-3, "learning rate of f_T' (and of the f_T warm start)", stage=(_WARM, _EVAL), gt=0.0
    )
    eval_lr_privacy: float = _f(
        2e-3, "learning rate of f_B' (and of the f_B warm start)", stage=(_WARM, _EVAL), gt=0.0
    )
    eval_batch_size: int = _f(
        32,
        "batch size of f_T' and f_B' training (and of the f_T warm start)",
        stage=(_WARM, _EVAL),
        min=2,
    )
    max_steps_per_epoch: int = _f(
        0, "cap on batches per epoch in every stage (0 = no cap)", stage=(_ID, _EVAL), min=0
    )
    augment_at: str = _f(
        "output",
        "where the game's training augmentation applies: 'output' (to f_A's outputs: f_A sees "
        "samples as the evaluation gives them, and the penalty bounds that change) or 'input' "
        "(the released code's: to f_A's inputs, so f_A can learn to tell two augmented views "
        "apart by their augmentation instead of hiding what they show)",
        stage=_GAME,
        choices=("output", "input"),
    )
    augment: str = _f(
        "light",
        "training augmentation: 'light' (flip, crop, brightness) or 'paper' (adds colour jitter "
        "and random erasing)",
        stage=(_WARM, _EVAL),
        registry="augmentation policy",
    )
    # Real datasets (see trainables/datasets): roots default to the environment variables
    # UCF101_ROOT, HMDB51_ROOT, PAHMDB_ROOT, VISPR_ROOT, VPUCF_ROOT and VPHMDB_ROOT.
    ucf101_root: str = _f("", "UCF101 root (UCF-101/ and ucfTrainTestlist/)", stage=_DATA)
    hmdb51_root: str = _f("", "HMDB51 root (<class>/<video>.avi and the split files)", stage=_DATA)
    pahmdb_root: str = _f("", "PA-HMDB51 root (PrivacyAttributes/<class>.json)", stage=_DATA)
    vispr_root: str = _f("", "VISPR root (images/<split>/ and annos/<split>/)", stage=_DATA)
    vpucf_root: str = _f("", "VP-UCF root (annotations.csv)", stage=_DATA)
    vphmdb_root: str = _f("", "VP-HMDB root (annotations.csv)", stage=_DATA)
    split: int = _f(1, "official split of UCF101/HMDB51 (1-3)", stage=_DATA, choices=(1, 2, 3))
    crop: float = _f(
        0.8, "fraction of the frame each clip crops before resizing", stage=_DATA, gt=0.0, max=1.0
    )
    test_clips: int = _f(
        5,
        "evenly spaced clips per test video (Top-1 averages their softmax)",
        stage=_DATA,
        min=1,
    )
    workers: int = _f(2, "DataLoader workers decoding real videos", stage=_RUN, min=0)
    clip_store: str = _f(
        "stream",
        "how real videos become clips: 'stream' (decoded batch by batch in persistent DataLoader "
        "workers, a fresh random clip of each training video every epoch; memory does not grow "
        "with the dataset) or 'memory' (decoded once before training, one random clip per "
        "training video; faster for small subsets)",
        stage=_DATA,
        choices=("stream", "memory"),
    )
    anon_weights: str = _f(
        "",
        "local file of f_A weights to start the game from (skips the identity initialisation; "
        "a trial's anonymizer.pt, of the same anonymizer and anon_init)",
        stage=_ID,
    )
    action_weights: str = _f(
        "",
        "local file of Kinetics-400 weights for f_T (and f_T' when it is the same model)",
        stage=(_WARM, _EVAL),
    )
    privacy_weights: str = _f(
        "", "local file of SimCLR self-supervised weights for f_B", stage=_WARM
    )
    amp: bool = _f(False, "bf16 autocast on CUDA", stage=(_ID, _EVAL))
    device: str = _f("auto", "'auto', 'cpu' or 'cuda[:N]'", stage=_RUN)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def target_action_model(self) -> str:
        return self.eval_action_model or self.action_model

    @property
    def target_privacy_model(self) -> str:
        return self.eval_privacy_model or self.privacy_model

    @property
    def action_eval_models(self) -> list[str]:
        """Every fresh f_T' of the evaluation: ``target_action_model`` first."""
        return list(
            dict.fromkeys([self.target_action_model, *split_names(self.eval_action_models)])
        )

    @property
    def privacy_eval_models(self) -> list[str]:
        """Every fresh f_B' of the evaluation: ``target_privacy_model`` first, then the listed
        ones, then ``<model>_pretrained`` for each model of ``eval_privacy_weights``."""
        names = [self.target_privacy_model, *split_names(self.eval_privacy_models)]
        names += [m + PRETRAINED for m in self.privacy_eval_weights]
        return list(dict.fromkeys(names))

    @property
    def privacy_eval_weights(self) -> dict[str, str]:
        """``eval_privacy_weights`` as model -> local path (malformed items are left out here;
        :func:`validate` names them)."""
        pairs = (item.split("=", 1) for item in split_names(self.eval_privacy_weights))
        return {m.strip(): p.strip() for m, *rest in pairs for p in rest if m.strip()}


#: The fields that only one anonymizer family reads, and that family (derived from
#: :data:`trainables.families.FAMILIES`): a trial's name shows them, the dry run leaves them
#: blank for the others, and those of the fixed families do not change a trial's cost.
FAMILY_FIELDS: dict[str, str] = knob_owners()

#: The suffix of a fresh f_B' evaluated from local weights (``eval_privacy_weights``).
PRETRAINED = "_pretrained"

#: Fields that name a local file to load.
WEIGHT_FIELDS = ("anon_weights", "action_weights", "privacy_weights")

SCALES: dict[str, dict[str, Any]] = {
    # Tests and quick looks: a whole trial in well under a minute on 2 CPU cores.
    "smoke": {},
    # The built-in study: enough data and epochs for the trade-off to show.
    # 4 frames show the drift (one pixel a frame) and halve every stage's cost against 8.
    "default": dict(
        frames=4,
        frame_gap=2,
        n_action_train=512,
        n_action_test=256,
        n_privacy_train=512,
        n_privacy_test=256,
        identity_epochs=8,
        pretrain_action_epochs=24,
        pretrain_privacy_epochs=6,
        minimax_epochs=3,
        eval_action_epochs=10,
        eval_privacy_epochs=8,
    ),
    # The paper's protocol (Algorithm 1 and the reference hyperparameters), for GPUs.
    "paper": dict(
        size=224,
        frames=16,
        skip=4,
        anonymizer="unetpp",
        anon_encoder="resnet18",
        action_model="i3d_r50",
        privacy_model="resnet50",
        # tubelet_prune: a ViT-S width, half its depth, 2 x 16 x 16 tubelets.
        tubelet_size=16,
        vit_dim=384,
        vit_depth=6,
        vit_heads=6,
        tubelet_epochs=30,
        tubelet_lr=1e-4,
        batch_size=8,
        privacy_batch_size=8,
        identity_epochs=100,
        identity_lr=1e-3,
        pretrain_action_epochs=0,
        pretrain_privacy_epochs=0,
        minimax_epochs=100,
        lr_anon=4e-5,
        lr_action=1e-4,
        lr_privacy=1e-4,
        eval_action_epochs=100,
        eval_privacy_epochs=100,
        eval_lr_action=1e-4,
        eval_lr_privacy=1e-3,
        eval_batch_size=16,
        augment="paper",
        workers=8,
        amp=True,
        n_action_train=9537,
        n_action_test=3783,
        n_privacy_train=2048,
        n_privacy_test=1024,
    ),
}

#: The scale of a study, and of the calibration that it records, when none is given.
STUDY_SCALE = "default"


class ConfigError(ValueError):
    """A config that cannot run; raised before any training starts."""


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _field_types(cls: type) -> dict[str, str]:
    return {f.name: str(f.type) for f in fields(cls)}


_TYPE_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false"}


def parse_value(cls: type, name: str, value: Any) -> Any:
    """``value`` (a string from the command line, Ray or MLflow, or already typed) as the type
    of field ``name`` of the dataclass ``cls``; a bad value is an error naming the key and the
    expected type."""
    types = _field_types(cls)
    if name not in types:
        raise ValueError(
            f"unknown config keys {[name]}; valid keys are: {', '.join(sorted(types))}"
        )
    t = types[name]
    if t not in _TYPE_WORDS:
        return value.strip() if isinstance(value, str) else value
    if t == "bool":
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "0", "false", "no"):
            return text in ("1", "true", "yes")
    elif not isinstance(value, bool):
        try:
            number = float(value)  # "3", 3 and 3.0 are all the int 3
            if t == "float":
                return number
            if number.is_integer():
                return int(number)
        except ValueError:
            pass
    raise ValueError(f"{name}={value!r}: expected {_TYPE_WORDS[t]}")


def parse_assignments(items: Iterable[str], cls: type | None = None) -> dict[str, Any]:
    """``KEY=VALUE`` items (``--set``) as typed values of ``cls``'s fields (TrialConfig by
    default); ``-`` in a key reads as ``_``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"--set takes KEY=VALUE, got {item!r}")
        out[key] = parse_value(cls or TrialConfig, key, value)
    return out


def config_for(scale: str = "smoke", **overrides: Any) -> TrialConfig:
    """The config of a named scale with ``overrides`` applied; unknown names are errors."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid scales are: {', '.join(SCALES)}")
    known = {f.name for f in fields(TrialConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(
            f"unknown config keys {unknown}; valid keys are: {', '.join(sorted(known))}"
        )
    values = {**SCALES[scale], **{k: v for k, v in overrides.items() if v is not None}}
    return TrialConfig(scale=scale, **values)


def from_dict(d: Mapping[str, Any]) -> TrialConfig:
    """Build a config from a flat dict (a Ray Tune config, MLflow params, ``--set`` values): the
    scale first, then the rest as overrides, each parsed as its field's type."""
    known = _field_types(TrialConfig)
    extra = sorted(set(d) - set(known))
    if extra:
        raise ValueError(f"unknown config keys {extra}; valid keys are: {', '.join(sorted(known))}")
    conv = {
        k: parse_value(TrialConfig, k, v) for k, v in d.items() if k != "scale" and v is not None
    }
    return config_for(str(d.get("scale", "smoke")), **conv)


def validate(
    cfg: TrialConfig,
    *,
    registries: Mapping[str, Collection[str]],
    rules: Iterable[Callable[[TrialConfig], str | None]] = (),
) -> None:
    """Check every field against its spec, then the rules that tie fields together; raise one
    ConfigError naming each bad field and the fix. ``registries`` maps a registry kind to its
    names, and ``rules`` are checks that need more than this module knows (each returns a message
    or None; they run only when the fields are valid). :func:`trainables.catalog.validate` passes
    every registry and the synthetic benchmark's render-size rule."""
    errors = [
        msg
        for f in fields(cfg)
        if (msg := f.metadata["spec"].problem(flag(f.name), getattr(cfg, f.name), registries))
    ]

    def check(ok: bool, msg: str) -> None:
        if not ok:
            errors.append(msg)

    if cfg.positives == "frames":
        check(
            1 <= cfg.frame_gap < cfg.frames,
            f"--frame-gap must be in [1, frames-1] = [1, {cfg.frames - 1}], got {cfg.frame_gap}",
        )
    check(
        cfg.device == "auto" or cfg.device == "cpu" or cfg.device.startswith("cuda"),
        f"--device must be auto, cpu or cuda[:N], got {cfg.device!r}",
    )
    if not errors:
        errors.extend(msg for rule in rules if (msg := rule(cfg)))
    for name in WEIGHT_FIELDS:
        value = getattr(cfg, name)
        check(
            not value or Path(value).is_file(),
            f"{flag(name)}: {value} does not exist (weights are never downloaded; "
            "give a local file)",
        )
    listed = [cfg.target_privacy_model, *split_names(cfg.eval_privacy_models)]
    for item in split_names(cfg.eval_privacy_weights):
        model, _, path = (s.strip() for s in item.partition("="))
        if not (model and path):
            check(False, f"eval_privacy_weights: {item!r} is not MODEL=PATH")
            continue
        check(
            model in listed,
            f"eval_privacy_weights: {model} is not a fresh f_B' of this trial ({', '.join(listed)}); "
            "add it to eval_privacy_models",
        )
        check(
            Path(path).is_file(),
            f"eval_privacy_weights: {path} does not exist (weights are never downloaded; give a "
            "local file)",
        )
    if errors:
        raise ConfigError("invalid trial config:\n  - " + "\n  - ".join(errors))
