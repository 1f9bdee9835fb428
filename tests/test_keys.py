"""The config's field metadata is the one source of each field's stage, and the cached stages
are keyed by exactly the fields that change them."""

from __future__ import annotations

import dataclasses
from dataclasses import fields

import pytest

from trainables.catalog import names
from trainables.config import STAGES, UPSTREAM, TrialConfig, config_for, param
from trainables.game import keys

#: Written out by hand, as the method defines it, so that a wrong UPSTREAM table fails here:
#: the stages whose output changes when a field of the stage on the left changes.
DOWNSTREAM = {
    "data": {"data", "identity", "warm", "evaluation", "game"},
    "identity": {"identity", "warm", "game"},
    "warm": {"warm", "game"},
    "evaluation": {"evaluation"},
    "game": {"game"},
    "runtime": set(),
}
#: The cached outputs and the stages each one covers.
CACHED = {
    "init": ({"identity", "warm"}, keys.init_key),
    "raw": ({"evaluation"}, keys.raw_key),
    "result": ({"game", "evaluation"}, keys.result_key),
}


def _other_value(cfg: TrialConfig, name: str):
    v = getattr(cfg, name)
    if isinstance(v, bool):
        return not v
    if isinstance(v, int):
        return v + 1
    if isinstance(v, float):
        return v * 2 + 0.05
    return v + "x"


def test_every_field_declares_known_stages_and_a_spec():
    assert set(DOWNSTREAM) == set(STAGES) == set(UPSTREAM)
    for f in fields(TrialConfig):
        assert f.metadata.get("help"), f.name
        stages = f.metadata.get("stages")
        assert stages and set(stages) <= set(STAGES), f"{f.name} has no known stage: {stages}"
        assert "spec" in f.metadata, f.name


def test_a_field_without_a_stage_is_refused():
    with pytest.raises(ValueError, match="needs stages"):
        param(1, "a field", stage=())
    with pytest.raises(ValueError, match="needs stages"):
        param(1, "a field", stage="pretraining")


def test_every_registry_a_field_names_exists():
    kinds = {f.metadata["spec"].registry for f in fields(TrialConfig)} - {""}
    assert kinds <= set(names())


@pytest.mark.parametrize("name", [f.name for f in fields(TrialConfig)])
def test_changing_a_field_changes_the_keys_of_its_stages_and_those_after_only(name):
    (field,) = [f for f in fields(TrialConfig) if f.name == name]
    # A field read only under a condition (one anonymizer's knob, the L1 stage's epochs) is
    # checked where it is read.
    base = config_for("smoke", **field.metadata.get("read_when", {}))
    changed = dataclasses.replace(base, **{name: _other_value(base, name)})
    after = set().union(*(DOWNSTREAM[s] for s in field.metadata["stages"]))
    for stage in set(STAGES) - {"runtime"}:
        moved = keys.stage_key(base, stage) != keys.stage_key(changed, stage)
        assert moved == (stage in after), f"{name}: key of stage {stage}"
    for what, (covers, key) in CACHED.items():
        assert (key(base) != key(changed)) == bool(covers & after), f"{name}: {what} key"


def test_a_field_of_one_anonymizer_is_in_no_other_anonymizers_key():
    from trainables.config import only_for_fields

    only = only_for_fields()
    assert {"keep_ratio", "tubelet_epochs", "vit_dim"} <= set(only)
    base = config_for("smoke")  # the penalty method's f_A
    for name in only:
        changed = dataclasses.replace(base, **{name: _other_value(base, name)})
        for what, (_, key) in CACHED.items():
            assert key(base) == key(changed), f"{name} moved the {what} key of {base.anonymizer}"


def test_the_l1_stage_s_fields_are_in_no_key_of_a_residual_f_a():
    from trainables.config import read_when_fields

    assert read_when_fields()["identity_epochs"] == {"anon_init": "l1"}
    residual = config_for("smoke")
    assert residual.anon_init == "residual"
    l1 = dataclasses.replace(residual, anon_init="l1")
    for name in ("identity_epochs", "identity_lr"):
        for base in (residual, l1):
            changed = dataclasses.replace(base, **{name: _other_value(base, name)})
            moved = keys.init_key(changed) != keys.init_key(base)
            assert moved == (base is l1), f"{name} under anon_init={base.anon_init}"
    assert keys.init_key(l1) != keys.init_key(residual)


def test_the_runtime_is_in_no_key_and_an_inert_penalty_drops_b_and_lambda():
    base = config_for("smoke")
    assert keys.key_fields("data", "identity", "warm", "evaluation", "game")  # not empty
    for name in ("device", "workers", "scale"):
        assert name not in keys.key_fields(*keys.RESULT_STAGES)
    inert = [dataclasses.replace(base, lam=0.0, B=b) for b in (0.0, 0.5)]
    inert.append(dataclasses.replace(base, lam=3.0, B=1.0))
    assert len({keys.result_key(c) for c in inert}) == 1
    assert keys.result_key(base) != keys.result_key(inert[0])
