"""Every registered anonymizer, action model and privacy model is built and stepped."""

import pytest
import torch

from trainables.models.action_models import ACTION_MODELS, build_action_model
from trainables.models.anonymizers import ANONYMIZERS, build_anonymizer, learned_anonymizers
from trainables.models.privacy_models import PRIVACY_MODELS, build_privacy_model
from trainables.registry import UnknownNameError


def _assert_all_grads(model: torch.nn.Module) -> None:
    missing = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())
    ]
    assert not missing, f"parameters without a finite gradient: {missing[:5]}"
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.parameters())


@pytest.mark.parametrize("name", ANONYMIZERS.names())
def test_anonymizer_builds_and_steps(name):
    from trainables.config import config_for
    from trainables.models.anon_base import fits

    torch.manual_seed(0)
    cfg = config_for("smoke", frames=2, anonymizer=name)  # the families read their knobs here
    anon = build_anonymizer(name, "resnet18", cfg, num_classes=4)
    x = torch.rand(2, 3, 2, 32, 32, requires_grad=True)
    mask = torch.zeros(2, 2, 32, 32, dtype=torch.bool)
    mask[:, :, 8:16, 8:16] = True
    y = anon(x, mask)
    assert y.shape == x.shape
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    if anon.trainable:
        _assert_all_grads(anon)
    elif not fits(anon):  # tubelet_prune's scorer has weights, trained by its own objective
        assert not list(anon.parameters())
    assert anon(x[:, :, 0], mask[:, 0]).shape == (2, 3, 32, 32)  # images too


def test_fixed_anonymizers_do_what_they_say():
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(build_anonymizer("identity")(x), x)
    mask = torch.zeros(1, 32, 32, dtype=torch.bool)
    mask[0, :4] = True
    out = build_anonymizer("blacken")(x, mask)
    assert out[..., :4, :].abs().sum() == 0 and torch.equal(out[..., 4:, :], x[..., 4:, :])
    d4 = build_anonymizer("downsample4x")(x)
    assert torch.allclose(d4.mean(), x.mean(), atol=1e-2)
    weak = (build_anonymizer("blur_weak")(x) - x).pow(2).mean()
    strong = (build_anonymizer("blur_strong")(x) - x).pow(2).mean()
    assert 0 < weak < strong
    with pytest.raises(ValueError, match="needs the actor masks"):
        build_anonymizer("blacken")(x)


@pytest.mark.parametrize("name", learned_anonymizers())
def test_a_residual_learned_anonymizer_is_the_identity_before_training_and_then_learns(name):
    from trainables.config import config_for

    torch.manual_seed(0)
    anon = build_anonymizer(name, "resnet18", config_for("smoke", anonymizer=name))
    x = torch.rand(2, 3, 2, 32, 32)
    x[0, :, 0] = 0.0  # saturated pixels, which a plain sigmoid cannot reproduce
    x[1, :, 1] = 1.0
    assert (anon(x) - x).abs().max() <= 2e-3
    anon.eval()
    assert (anon(x) - x).abs().max() <= 2e-3
    anon.train()
    opt = torch.optim.Adam(anon.parameters(), lr=1e-3)
    target = 1 - x
    for _ in range(2):
        opt.zero_grad()
        (anon(x) - target).square().mean().backward()
        opt.step()
    opt.zero_grad()
    (anon(x) - target).square().mean().backward()
    frozen = [n for n, p in anon.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not frozen, f"parameters that the zeroed head keeps from learning: {frozen[:5]}"


def test_an_l1_initialised_anonymizer_is_a_plain_sigmoid_of_the_net():
    from trainables.config import config_for

    torch.manual_seed(0)
    anon = build_anonymizer("unetpp_tiny", "resnet18", config_for("smoke", anon_init="l1"))
    x = torch.zeros(1, 3, 32, 32)
    assert not anon.residual
    assert torch.allclose(anon(x), torch.sigmoid(anon.get_submodule("net")(x)))
    assert (anon(x) - x).abs().max() > 0.05  # far from the identity until the L1 stage


@pytest.mark.parametrize("name", ["unetpp", "unet", "unetpp_tiny"])
@pytest.mark.parametrize("encoder", ["resnet18", "mobilenet_v2"])
def test_learned_anonymizer_encoders(name, encoder):
    anon = build_anonymizer(name, encoder)
    assert anon(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)


@pytest.mark.parametrize("name", ACTION_MODELS.names())
def test_action_model_builds_and_steps(name):
    torch.manual_seed(0)
    frames, size = 4, 32
    model = build_action_model(name, num_classes=5, frames=frames, size=size)
    model.train()
    x = torch.rand(2, 3, frames, size, size)
    logits = model(x)
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 3])).backward()
    _assert_all_grads(model)


@pytest.mark.parametrize("name", ACTION_MODELS.names())
def test_every_action_model_exposes_its_penultimate_features(name):
    """What the feature-based penalty reads: the classifier's input, per sample, with a
    gradient back to the clips; reading it leaves the logits as they were."""
    torch.manual_seed(0)
    frames, size = 4, 32
    model = build_action_model(name, num_classes=5, frames=frames, size=size).eval()
    x = torch.rand(2, 3, frames, size, size, requires_grad=True)
    with torch.no_grad():
        logits = model(x)
    feats = model.features(x)
    assert feats.dim() == 2 and feats.shape[0] == 2
    assert feats.shape[1] % model.classifier.in_features == 0 and torch.isfinite(feats).all()
    assert not torch.equal(feats[0], feats[1])  # they depend on the clip
    feats.square().sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    with torch.no_grad():
        assert torch.equal(model(x), logits)
    assert not model.classifier._forward_pre_hooks  # the hook is gone
    # The classifier is read through the backbone, not registered twice: the state dict (and
    # so every checkpoint) holds each parameter once, under the backbone's name.
    keys = list(model.state_dict())
    assert not any(k.startswith("classifier.") for k in keys) and len(keys) == len(set(keys))


@pytest.mark.parametrize("name", PRIVACY_MODELS.names())
@pytest.mark.parametrize("head", ["simclr", "multilabel"])
def test_privacy_model_builds_and_steps(name, head):
    torch.manual_seed(0)
    model = build_privacy_model(name, head=head, num_outputs=7)
    out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    if head == "simclr":
        assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)
    out.sum().backward() if head == "multilabel" else out[:, 0].sum().backward()
    _assert_all_grads(model)


@pytest.mark.parametrize("registry", [ANONYMIZERS, ACTION_MODELS, PRIVACY_MODELS])
def test_unknown_name_lists_the_valid_ones(registry):
    with pytest.raises(UnknownNameError) as err:
        registry.get("no_such_model")
    msg = str(err.value)
    assert "no_such_model" in msg and all(n in msg for n in registry.names())


def test_unknown_encoder_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown anonymizer encoder 'resnet9000'"):
        build_anonymizer("unetpp", "resnet9000")


def test_each_anonymizers_family_says_what_it_is():
    """The registered family is what the built module does: the game trains exactly the
    families that play it, only a fitting family has a fit(), and the paper's baselines are
    fixed."""
    from trainables.models.anon_base import fits
    from trainables.models.anonymizers import anonymizer_family, paper_baselines

    for n in ANONYMIZERS.names():
        anon, fam = build_anonymizer(n, "resnet18"), anonymizer_family(n)
        assert anon.trainable == fam.plays_game and fits(anon) == fam.fits, n
    assert set(learned_anonymizers()) == {"unet", "unet_tiny", "unetpp", "unetpp_tiny"}
    assert set(paper_baselines()) == {
        "identity", "downsample2x", "downsample4x", "blur_weak", "blur_strong", "blacken",
    }  # fmt: skip
    assert not {"minimize", "tubelet_prune"} & set(paper_baselines())
