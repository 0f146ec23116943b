"""course_utils.cascade (lesson 09): the condition (bicubic upsampling, noise-conditioning augmentation), the
super-resolution U-Net, its loss, the two-stage sampler, and the shipped ``sr32``.

Checks are independent of the code: Monte-Carlo statistics of the augmentation, torch's own interpolation, a
recording model that sees what the sampler hands it, and the noise implied by (condition, told level)."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import cascade, pretrained
from course_utils.diffusion import GaussianDiffusion
from course_utils.models import UNetConfig
from course_utils.pretrained import ASSETS
from course_utils.schedules import linear_betas

D50 = GaussianDiffusion(linear_betas(50))


def _tiny_sr(seed=0) -> cascade.SRUNet:
    torch.manual_seed(seed)
    model = cascade.SRUNet(cascade.SRUNetConfig(UNetConfig(in_channels=2, out_channels=1, channels=(8, 16),
                                                           norm_groups=4)))
    nn.init.normal_(model.conv_out.weight, std=0.3)          # zero-initialised: re-draw so ε_θ depends on its inputs
    return model


def _implied_noise(cond, z, a):
    """ε = (z_a − √(1 − a²)·z) / a: the noise z_a holds if the level the model was told is the applied one."""
    a = a.view(-1, 1, 1, 1).double()
    return (cond.double() - (1 - a * a).sqrt() * z.double()) / a


class Recorder(nn.Module):
    """A stand-in super-resolution model: records each call's (x_t, t, cond, aug_level), predicts ε = 0.3·x_t."""

    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))
        self.calls = []

    def forward(self, x, t, cond, aug_level):
        self.calls.append((x.clone(), t.clone(), cond.clone(), torch.as_tensor(aug_level).clone()))
        return 0.3 * x + 0 * self.p


# ---------------------------------------------------------------------------------------------- the condition
def test_upsample_is_torchs_bicubic_clamped_and_never_shrinks():
    g = torch.Generator().manual_seed(0)
    low = torch.rand(3, 1, 16, 16, generator=g) * 2 - 1
    low[0] = torch.where((torch.arange(16)[:, None] + torch.arange(16)) % 2 == 0, 1.0, -1.0)   # a checkerboard
    raw = F.interpolate(low, size=(32, 32), mode="bicubic", align_corners=False)
    assert float(raw.abs().max()) > 1.05                     # bicubic overshoots ±1 at sharp edges …
    up = cascade.upsample(low)
    assert up.shape == (3, 1, 32, 32) and up.dtype == low.dtype
    assert float(up.min()) >= -1 and float(up.max()) <= 1    # … the condition does not
    torch.testing.assert_close(up, raw.clamp(-1, 1))
    assert cascade.upsample(low, 40).shape == (3, 1, 40, 40)
    torch.testing.assert_close(cascade.upsample(low.double(), 24),
                               F.interpolate(low.double(), size=(24, 24), mode="bicubic").clamp(-1, 1))
    for size in (8, 15, 32.0, True, "32"):
        with pytest.raises(ValueError, match=r"^size must be an int at least the input's side 16"):
            cascade.upsample(low, size)
    with pytest.raises(ValueError, match=r"^low must be a float tensor"):
        cascade.upsample(low[:, 0])


def test_augment_condition_zero_is_the_identity():
    z = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(cascade.augment_condition(z, 0.0, noise), z, rtol=0, atol=0)
    torch.testing.assert_close(cascade.augment_condition(z, torch.zeros(4), noise), z, rtol=0, atol=0)
    assert cascade.augment_condition(z.double(), 0.3, noise).dtype == torch.float64


@pytest.mark.parametrize("a", [0.2, 0.6, 0.95])
def test_augment_condition_keeps_unit_variance_and_correlates_by_sqrt_one_minus_a2(a):
    """Monte-Carlo, 204,800 draws: for z ~ N(0, 1), z_a has variance 1 and corr(z_a, z) = √(1 − a²)."""
    g = torch.Generator().manual_seed(3)
    z = torch.randn(200, 1, 32, 32, generator=g, dtype=torch.float64)
    noise = torch.randn(z.shape, generator=g, dtype=torch.float64)
    out = cascade.augment_condition(z, a, noise).flatten()
    n = out.numel()
    assert abs(float(out.var()) - 1) < 6 * math.sqrt(2 / n)                   # var's standard error √(2/n)
    corr = float(torch.corrcoef(torch.stack([out, z.flatten()]))[0, 1])
    assert abs(corr - math.sqrt(1 - a * a)) < 6 * (a * a) / math.sqrt(n) + 1e-4   # corr's s.e. (1 − ρ²)/√n
    # and the added part is the noise scaled by a: corr(z_a, ε) = a
    assert abs(float(torch.corrcoef(torch.stack([out, noise.flatten()]))[0, 1]) - a) < 0.01


def test_augment_condition_applies_one_level_per_image():
    g = torch.Generator().manual_seed(4)
    z = torch.rand(3, 1, 8, 8, generator=g) * 2 - 1
    noise = torch.randn(z.shape, generator=g)
    levels = torch.tensor([0.0, 0.5, 0.9])
    out = cascade.augment_condition(z, levels, noise)
    for i, a in enumerate(levels.tolist()):
        torch.testing.assert_close(out[i], math.sqrt(1 - a * a) * z[i] + a * noise[i])
    torch.testing.assert_close(out[0], z[0], rtol=0, atol=0)
    torch.testing.assert_close(cascade.augment_condition(z, torch.tensor(0.5), noise),
                               cascade.augment_condition(z, 0.5, noise))            # a 0-d tensor is broadcast


@pytest.mark.parametrize("level", [-0.1, 1.0, 1.5, True, "0.2", None, float("nan"), torch.tensor([0.1, 0.2]),
                                   torch.tensor([[0.1, 0.2, 0.3]]), torch.tensor([0.1, 1.0, 0.2]),
                                   torch.tensor([True, False, True])])
def test_augment_condition_refuses_a_bad_level(level):
    z = torch.zeros(3, 1, 8, 8)
    with pytest.raises(ValueError, match=r"^the augmentation level \(aug_level\) must"):
        cascade.augment_condition(z, level, torch.zeros_like(z))


def test_augment_condition_refuses_a_nan_level_tensor():
    z = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"^the augmentation level \(aug_level\) must lie in \[0, 1\)"):
        cascade.augment_condition(z, torch.tensor([float("nan"), 0.1]), torch.zeros_like(z))


def test_augment_condition_refuses_noise_of_the_wrong_shape():
    z = torch.zeros(3, 1, 8, 8)
    for noise in (torch.zeros(3, 1, 4, 4), torch.zeros(1, 1, 8, 8), None):
        with pytest.raises(ValueError, match=r"^noise must be a tensor with z's shape \(3, 1, 8, 8\)"):
            cascade.augment_condition(z, 0.1, noise)
    with pytest.raises(ValueError, match=r"^z must be a float tensor"):
        cascade.augment_condition(torch.zeros(3, 8, 8), 0.1, torch.zeros(3, 8, 8))


# ---------------------------------------------------------------------------------------------- the SR U-Net
def test_sr_unet_shape_and_its_three_inputs_all_matter():
    model = _tiny_sr().eval()
    g = torch.Generator().manual_seed(5)
    x, cond = torch.randn(2, 1, 32, 32, generator=g), torch.rand(2, 1, 32, 32, generator=g) * 2 - 1
    t = torch.tensor([3, 40])
    with torch.no_grad():
        base = model(x, t, cond, 0.0)
        assert base.shape == (2, 1, 32, 32) and bool(torch.isfinite(base).all())
        assert not torch.allclose(base, model(x, t, cond, 0.5), atol=1e-4)           # the level is read …
        assert not torch.allclose(base, model(x, t, -cond, 0.0), atol=1e-4)          # … and the condition
        assert not torch.allclose(base, model(x, torch.tensor([30, 5]), cond, 0.0), atol=1e-4)
        # per-image levels: image i behaves as if the whole batch had its level (GroupNorm is per image)
        mixed = model(x, t, cond, torch.tensor([0.0, 0.5]))
        torch.testing.assert_close(mixed[0], base[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(mixed[1], model(x, t, cond, 0.5)[1], atol=1e-5, rtol=1e-5)
    # the untrained, zero-initialised output predicts ε = 0 whatever the level
    fresh = cascade.SRUNet(model.sr_config)
    with torch.no_grad():
        assert float(fresh(x, t, cond, 0.3).abs().max()) == 0.0


def test_sr_unet_rebuilds_from_its_config_dict():
    model = _tiny_sr()
    again = cascade.SRUNet(model.sr_config.to_dict())
    again.load_state_dict(model.state_dict())
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(again(x, 7, x.tanh(), 0.2), model(x, 7, x.tanh(), 0.2))
    assert cascade.SRUNetConfig().unet.channels == (32, 64, 64)


def test_sr_unet_bad_input():
    model = _tiny_sr()
    x = torch.zeros(2, 1, 32, 32)
    with pytest.raises(ValueError, match=r"^SRUNet needs the condition and its augmentation level"):
        model(x, 3)
    with pytest.raises(ValueError, match=r"^SRUNet needs the condition"):
        model(x, 3, x)
    for cond in (torch.zeros(2, 1, 16, 16), torch.zeros(2, 2, 32, 32), "z"):
        with pytest.raises(ValueError, match=r"^cond must be the upsampled condition with x's shape"):
            model(x, 3, cond, 0.1)
    with pytest.raises(ValueError, match=r"^x must be the \(B, 1, H, W\) noisy image x_t"):
        model(torch.zeros(2, 2, 32, 32), 3, torch.zeros(2, 2, 32, 32), 0.1)
    with pytest.raises(ValueError, match=r"^the augmentation level \(aug_level\) must"):
        model(x, 3, x, 1.0)
    for bad in (UNetConfig(in_channels=1, channels=(8, 16), norm_groups=4),
                UNetConfig(in_channels=3, out_channels=1, channels=(8, 16), norm_groups=4),
                UNetConfig(in_channels=2, channels=(8, 16), norm_groups=4),              # out_channels = 2
                UNetConfig(in_channels=2, out_channels=1, channels=(8, 16), norm_groups=4, num_classes=10)):
        with pytest.raises(ValueError, match=r"^SRUNetConfig.unet must have in_channels=2"):
            cascade.SRUNetConfig(bad)
    with pytest.raises(ValueError, match=r"^config must be an SRUNetConfig"):
        cascade.SRUNet(UNetConfig())


# ---------------------------------------------------------------------------------------------- the loss
def _pairs(B=8, size=16, seed=6, z_value=None):
    g = torch.Generator().manual_seed(seed)
    hi = torch.rand(B, 1, size, size, generator=g) * 2 - 1
    z = torch.rand(B, 1, size, size, generator=g) * 2 - 1
    if z_value is not None:
        z = torch.full_like(z, z_value)
    return torch.cat([hi, z], dim=1)


def test_sr_loss_is_a_reproducible_scalar_whose_gradient_reaches_the_level_embedding():
    model, pairs, loss_fn = _tiny_sr(), _pairs(), cascade.make_sr_loss(0.5)
    loss = loss_fn(model, D50, pairs, None, torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and bool(torch.isfinite(loss)) and loss.item() > 0
    loss.backward()
    for p in model.aug_mlp.parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0
    with torch.no_grad():
        same = loss_fn(model, D50, pairs, None, torch.Generator().manual_seed(0))
        other = loss_fn(model, D50, pairs, None, torch.Generator().manual_seed(1))
    assert same.item() == loss.item() and other.item() != loss.item()


def test_sr_loss_tells_the_model_the_level_it_applied():
    """A recording model sees (z_a, a) per image; with z known, (z_a − √(1 − a²)·z)/a must be N(0, 1) noise."""
    rec, pairs = Recorder(), _pairs(B=8, size=32, z_value=0.8)
    cascade.make_sr_loss(0.5)(rec, D50, pairs, None, torch.Generator().manual_seed(2))
    (xt, t, cond, a), = rec.calls
    assert a.shape == (8,) and float(a.min()) >= 0 and float(a.max()) < 0.5 and len(set(a.tolist())) == 8
    assert xt.shape == cond.shape == (8, 1, 32, 32)
    eps = _implied_noise(cond, pairs[:, 1:], a).flatten(1)                     # (8, 1024)
    assert float(eps.mean(1).abs().max()) < 0.15 and float((eps.std(1) - 1).abs().max()) < 0.15


def test_sr_loss_bad_input():
    with pytest.raises(ValueError, match=r"^the super-resolution loss trains on \(B, 2, H, W\) pairs"):
        cascade.make_sr_loss(0.5)(_tiny_sr(), D50, torch.zeros(4, 1, 16, 16), None, None)
    for bad in (1.0, -0.1, True, "0.5"):
        with pytest.raises(ValueError, match=r"^max_level must be a float in \[0, 1\)"):
            cascade.make_sr_loss(bad)


# ---------------------------------------------------------------------------------------------- sampling
def _low(B=2, size=8, seed=7):
    return torch.rand(B, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_super_resolve_draws_the_condition_once_and_tells_the_model_its_level():
    rec, low = Recorder(), _low()
    cond_noise = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(8))
    out = cascade.super_resolve(rec, D50, low, aug_level=0.3, num_steps=5, cond_noise=cond_noise)
    assert out.shape == (2, 1, 16, 16) and float(out.min()) >= -1 and float(out.max()) <= 1
    assert len(rec.calls) == 5
    z = F.interpolate(low, size=(16, 16), mode="bicubic", align_corners=False).clamp(-1, 1)
    want = math.sqrt(1 - 0.09) * z + 0.3 * cond_noise
    for _, _, cond, a in rec.calls:                          # the same z_a, and a = 0.3, at every step
        torch.testing.assert_close(cond, want)
        torch.testing.assert_close(a, torch.full((2,), 0.3))
    assert [int(c[1][0]) for c in rec.calls] == D50.ddim_timesteps(5)


def test_super_resolve_draws_its_own_condition_noise_at_the_told_level():
    rec, low = Recorder(), _low(B=4, size=16)
    cascade.super_resolve(rec, D50, low, aug_level=0.4, num_steps=3, seed=11)
    conds = [c[2] for c in rec.calls]
    assert all(torch.equal(c, conds[0]) for c in conds)
    eps = _implied_noise(conds[0], cascade.upsample(low), rec.calls[0][3]).flatten(1)
    assert float(eps.mean(1).abs().max()) < 0.15 and float((eps.std(1) - 1).abs().max()) < 0.15


def test_super_resolve_is_deterministic_for_a_seed_and_the_generator_wins():
    model, low = _tiny_sr(), _low()
    a = cascade.super_resolve(model, D50, low, 0.2, num_steps=4, seed=3)
    assert a.shape == (2, 1, 16, 16) and float(a.abs().max()) <= 1
    torch.testing.assert_close(cascade.super_resolve(model, D50, low, 0.2, num_steps=4, seed=3), a, rtol=0, atol=0)
    assert not torch.allclose(cascade.super_resolve(model, D50, low, 0.2, num_steps=4, seed=4), a)
    with_g = cascade.super_resolve(model, D50, low, 0.2, num_steps=4, seed=99,
                                   generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(with_g, a, rtol=0, atol=0)
    # the level reaches the model: the same draws at another level give other images
    assert not torch.allclose(cascade.super_resolve(model, D50, low, 0.0, num_steps=4, seed=3), a)


def test_super_resolve_bad_input():
    model, low = _tiny_sr(), _low()
    for name in ("cond_noise", "x_T"):
        for bad in (torch.zeros(2, 1, 8, 8), torch.zeros(3, 1, 16, 16), [0.0]):
            with pytest.raises(ValueError, match=rf"^{name} must be a tensor of shape \(2, 1, 16, 16\)"):
                cascade.super_resolve(model, D50, low, 0.1, num_steps=2, **{name: bad})
    with pytest.raises(ValueError, match=r"^low must be a float tensor"):
        cascade.super_resolve(model, D50, low[:, 0], 0.1, num_steps=2)
    with pytest.raises(ValueError, match=r"^the augmentation level \(aug_level\) must"):
        cascade.super_resolve(model, D50, low, 1.0, num_steps=2)
    with pytest.raises(ValueError, match=r"^seed must be an int"):
        cascade.super_resolve(model, D50, low, 0.1, num_steps=2, seed="0")
    with pytest.raises(ValueError, match=r"^num_steps must be an int in \[1, T=50\]"):
        cascade.super_resolve(model, D50, low, 0.1, num_steps=0)


@pytest.fixture
def no_checkpoint(monkeypatch):
    """Loading any checkpoint fails the test: bad arguments must be refused before one is needed."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("a checkpoint was loaded before the arguments were validated")
    monkeypatch.setattr(cascade, "_LOADED", {})
    monkeypatch.setattr(cascade, "load_sr32", refuse)
    monkeypatch.setattr(pretrained, "load_pretrained", refuse)


GOOD = torch.tensor([0, 7])
BAD_LABELS = [torch.tensor([], dtype=torch.long), torch.tensor([1.0, 2.0]), torch.tensor([3, 10]),
              torch.tensor([-1]), [1, 2], torch.tensor(3), torch.tensor([True, False])]


@pytest.mark.parametrize("kwargs, match", [
    ({"w": "2"}, r"^w must be a finite float"), ({"w": float("nan")}, r"^w must be a finite float"),
    ({"w": True}, r"^w must be a finite float"),
    ({"num_steps": 0}, r"^num_steps must be an int in \[1, 1000\]"),
    ({"num_steps": 2.0}, r"^num_steps must be an int"), ({"num_steps": 1001}, r"^num_steps must be"),
    ({"aug_level": 1.0}, r"^the augmentation level \(aug_level\) must lie in \[0, 1\)"),
    ({"aug_level": -0.1}, r"^the augmentation level \(aug_level\) must"), ({"aug_level": "0.2"}, r"^the augmentation level")])
def test_cascade_sample_refuses_bad_settings_before_loading(no_checkpoint, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cascade.sample(GOOD, **kwargs)


@pytest.mark.parametrize("labels", BAD_LABELS, ids=lambda v: repr(v)[:20])
def test_cascade_sample_refuses_bad_labels_before_loading(no_checkpoint, labels):
    with pytest.raises(ValueError, match=r"^labels must be"):
        cascade.sample(labels)


def test_cascade_sample_refuses_a_bad_seed_before_loading(no_checkpoint):
    with pytest.raises(ValueError, match=r"^seed must be an int"):
        cascade.sample(GOOD, seed="1")


@pytest.mark.parametrize("kwargs", [{"labels": torch.tensor([], dtype=torch.long)}, {"labels": torch.tensor([10])},
                                    {"labels": GOOD, "w": "2"}, {"labels": GOOD, "num_steps": 0}], ids=str)
def test_base_sample_refuses_bad_input_before_loading(no_checkpoint, kwargs):
    with pytest.raises(ValueError):
        cascade.base_sample(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"labels": torch.tensor([], dtype=torch.long)}, r"^labels must be a non-empty \(B,\) int64 tensor"),
    ({"labels": torch.tensor([1.0])}, r"^labels must be a non-empty"),
    ({"labels": torch.tensor([2, 10])}, r"^labels must be classes 0–9; got values from 2 to 10"),
    ({"labels": GOOD, "w": "2"}, r"w must be a finite float"),
    ({"labels": GOOD, "num_steps": 0}, r"^num_steps must be an int in \[1, ")])
def test_base_sample_refuses_bad_input(kwargs, match):
    """Checked before cfg16 is loaded: a ValueError naming the argument."""
    with pytest.raises(ValueError, match=match):
        cascade.base_sample(**kwargs)


# ---------------------------------------------------------------------------------------------- shipped sr32
@pytest.mark.skipif(not (ASSETS / "sr32.pt").exists(),
                    reason="sr32 is being built (python -m course_utils.pretrained build sr32); on once shipped")
class TestShippedSR32:
    def test_loads_as_recorded(self):
        model, diffusion, meta = cascade.load_sr32()
        assert isinstance(model, cascade.SRUNet) and not model.training
        assert not any(p.requires_grad for p in model.parameters())
        assert diffusion.num_timesteps == cascade.SR32_RECIPE["T"]
        assert model.sr_config.residual_scale == meta["model_config"]["residual_scale"] and 0.1 < meta["model_config"]["residual_scale"] < 0.2
        assert diffusion.clip_x0 is False                       # x̂0 is the scaled residual: not bounded by [-1, 1]
        rec = json.loads((ASSETS / "sr32.json").read_text())
        assert rec["sha256"] == (ASSETS / "sr32.pt.sha256").read_text().split()[0]
        assert rec["model_config"] == model.sr_config.to_dict() == meta["model_config"]

    def test_record_sweeps_every_level_and_the_clean_condition_beats_bicubic_on_real_images(self):
        """On real 16 px test images (the record's evaluation, sharp classifier) super-resolution at a = 0 more than
        halves bicubic's Fréchet distance and squared error, and the most noise costs the most (what lesson 09 says)."""
        ev = json.loads((ASSETS / "sr32.json").read_text())["evaluation"]
        per = ev["per_level"]
        assert set(per) == {str(a) for a in cascade.AUG_SWEEP}
        fd = {float(a): v["frechet_distance"] for a, v in per.items()}
        assert fd[0.0] < 0.5 * ev["bicubic"]["frechet_distance"] and per["0.0"]["mse"] < 0.5 * ev["bicubic"]["mse"]
        assert fd[max(fd)] == max(fd.values()) and fd[max(fd)] > fd[0.0]

    def test_super_resolution_follows_its_condition(self):
        from course_utils.data import load_fashion_mnist

        model, diffusion, _ = cascade.load_sr32()
        low = load_fashion_mnist(train=False, image_size=16, limit=8).images
        x = cascade.super_resolve(model, diffusion, low, cascade.LESSON_AUG, num_steps=10, seed=0)
        assert x.shape == (8, 1, 32, 32) and float(x.abs().max()) <= 1
        down = F.avg_pool2d(x, 2)
        matched = float(F.mse_loss(down, low))
        shuffled = float(F.mse_loss(down, low.roll(1, dims=0)))
        assert matched < 0.5 * shuffled, (matched, shuffled)

    def test_cascade_sample_is_reproducible(self):
        labels = torch.tensor([0, 7, 9])
        high, low = cascade.sample(labels, seed=1, num_steps=5, return_base=True)
        assert high.shape == (3, 1, 32, 32) and low.shape == (3, 1, 16, 16)
        assert float(high.abs().max()) <= 1 and float(low.abs().max()) <= 1
        torch.testing.assert_close(cascade.sample(labels, seed=1, num_steps=5), high, rtol=0, atol=0)
        assert not torch.allclose(cascade.sample(labels, seed=2, num_steps=5), high)


# ---------------------------------------------------------------------------------------------- residual variant
class ResidualRecorder(Recorder):
    """The recording stand-in, declared a residual model (sr_config.residual_scale = s)."""

    def __init__(self, s):
        super().__init__()
        self.sr_config = cascade.SRUNetConfig(UNetConfig(in_channels=2, out_channels=1, channels=(8, 16),
                                                         norm_groups=4), residual_scale=s)


def test_residual_config_round_trips_and_refuses_a_bad_scale():
    cfg = cascade.SRUNetConfig(residual_scale=0.15)
    assert cascade.SRUNetConfig(**cfg.to_dict()) == cfg and "residual_scale" not in cascade.SRUNetConfig().to_dict()
    model = cascade.SRUNet(cfg.to_dict())
    assert model.sr_config.residual_scale == 0.15
    for bad in (0.0, -1.0, "0.1", True):
        with pytest.raises(ValueError, match="residual_scale must be None"):
            cascade.SRUNetConfig(residual_scale=bad)


def test_residual_loss_targets_the_scaled_residual():
    """With a fixed generator the residual loss is L_simple of (x − z)/s: the same draws as the package's loss."""
    pairs, s = _pairs(B=4, size=16), 0.2
    rec = Recorder()
    cascade.make_sr_loss(0.0, residual_scale=s)(rec, D50, pairs, None, torch.Generator().manual_seed(3))
    (xt, t, cond, a), = rec.calls
    torch.testing.assert_close(cond, pairs[:, 1:])                        # a = 0: the clean condition
    g = torch.Generator().manual_seed(3)
    torch.rand(4, generator=g)
    torch.randn(pairs[:, 1:].shape, generator=g)                           # the augmentation's draws, in order
    t_ref = torch.randint(0, 50, (4,), generator=g)
    noise = torch.randn(pairs[:, :1].shape, generator=g)
    abar = torch.cumprod(1 - linear_betas(50).double(), 0)[t_ref].view(-1, 1, 1, 1)
    r0 = (pairs[:, :1].double() - pairs[:, 1:].double()) / s
    torch.testing.assert_close(t, t_ref)
    torch.testing.assert_close(xt.double(), abar.sqrt() * r0 + (1 - abar).sqrt() * noise.double(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="residual_scale must be None or a positive float"):
        cascade.make_sr_loss(0.5, residual_scale=0)


def test_residual_super_resolve_adds_the_scaled_residual_to_the_upsample():
    """DDIM (η = 0, x̂0 not clipped) in residual space, written out here, then upsample(low) + s·r."""
    s, low = 0.25, _low(B=3, size=8)
    x_T = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(4))
    out = cascade.super_resolve(ResidualRecorder(s), D50, low, aug_level=0.0, num_steps=5, x_T=x_T)
    abar = torch.cumprod(1 - linear_betas(50).double(), 0)
    ts = D50.ddim_timesteps(5)
    r = x_T.double()
    for t, t_prev in zip(ts, ts[1:] + [-1]):
        eps = 0.3 * r                                                     # the recorder's ε prediction
        x0 = (r - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()
        ab_prev = abar[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
        r = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
    want = (cascade.upsample(low, 16).double() + s * r).clamp(-1, 1)
    torch.testing.assert_close(out.double(), want, rtol=1e-4, atol=1e-4)
