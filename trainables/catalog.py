"""Every registry a config field names, by the kind its field declares, and the validation of
a config against them."""

from __future__ import annotations

from collections.abc import Collection

from trainables import config
from trainables.data.augment import POLICIES
from trainables.data.load import DATASETS, render_problem
from trainables.models.action_models import ACTION_MODELS
from trainables.models.anonymizers import ANONYMIZERS
from trainables.models.privacy_models import PRIVACY_MODELS
from trainables.registry import Registry

#: The registries users pick from by name, as listed by ``python -m trainables.run --list``.
REGISTRIES: tuple[Registry, ...] = (DATASETS, ANONYMIZERS, ACTION_MODELS, PRIVACY_MODELS)


def names() -> dict[str, Collection[str]]:
    """Registry kind -> the names it holds (the kinds config fields declare)."""
    return {**{r.kind: r.names() for r in REGISTRIES}, "augmentation policy": POLICIES}


def validate(cfg: config.TrialConfig) -> None:
    """Check ``cfg`` (:func:`trainables.config.validate`) with every registry and the synthetic
    benchmark's render size; raise ConfigError."""
    config.validate(cfg, registries=names(), rules=(render_problem,))
