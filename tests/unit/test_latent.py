"""course_utils.latent (lesson 09): the autoencoder, the scale factor, sampling in latent space, decoding, and
the shipped ``ae32`` / ``ldm32``.

Checks are independent of the code: numpy's standard deviation, a stand-in autoencoder whose decode is the
identity, and the closed form of deterministic DDIM with a model that predicts ε = 0."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from course_utils import latent
from course_utils.diffusion import GaussianDiffusion
from course_utils.models import UNet, UNetConfig
from course_utils.pretrained import ASSETS
from course_utils.schedules import linear_betas

BETAS = linear_betas(50)


def _tiny_ae(seed=0) -> latent.Autoencoder:
    torch.manual_seed(seed)
    return latent.Autoencoder(latent.AutoencoderConfig(channels=(8, 8, 8), groups=4))


def _images(B=3, size=32, seed=1):
    return torch.rand(B, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ---------------------------------------------------------------------------------------------- the autoencoder
def test_autoencoder_shapes_and_the_decoded_range():
    ae, x = _tiny_ae(), _images()
    with torch.no_grad():
        z = ae.encode(x)
        assert z.shape == (3, 4, 8, 8) and bool(torch.isfinite(z).all())
        nn.init.normal_(ae.decoder[-1].weight, std=3.0)           # make the raw output overshoot ±1
        raw = ae.decoder(z)
        assert float(raw.abs().max()) > 1.5
        out = ae.decode(z)
        assert out.shape == (3, 1, 32, 32) and float(out.min()) >= -1 and float(out.max()) <= 1
        torch.testing.assert_close(out, raw.clamp(-1, 1))
        torch.testing.assert_close(ae(x), raw)                   # forward: the unclamped reconstruction
    assert latent.Autoencoder().config == latent.AutoencoderConfig()
    wide = latent.Autoencoder(latent.AutoencoderConfig(channels=(8, 8, 8), latent_channels=2, groups=4))
    with torch.no_grad():
        assert wide.encode(x).shape == (3, 2, 8, 8) and wide.decode(torch.zeros(1, 2, 8, 8)).shape == (1, 1, 32, 32)


def test_autoencoder_rebuilds_from_its_config_dict():
    ae = _tiny_ae()
    again = latent.Autoencoder(ae.config.to_dict())
    again.load_state_dict(ae.state_dict())
    assert ae.config.to_dict() == {"channels": [8, 8, 8], "latent_channels": 4, "groups": 4}
    with torch.no_grad():
        torch.testing.assert_close(again.encode(_images()), ae.encode(_images()))


def test_autoencoder_bad_input():
    ae = _tiny_ae()
    for x in (_images(size=28), _images(size=16), torch.zeros(2, 1, 32, 16)):
        with pytest.raises(ValueError, match=r"^the autoencoder encodes 32 × 32 images"):
            ae.encode(x)
    with pytest.raises(ValueError, match=r"^x must be a float tensor"):
        ae.encode(torch.zeros(32, 32))
    for z in (torch.zeros(2, 3, 8, 8), torch.zeros(2, 4, 4, 4), torch.zeros(4, 8, 8), "z"):
        with pytest.raises(ValueError, match=r"^z must be a \(B, 4, 8, 8\) latent"):
            ae.decode(z)
    with pytest.raises(ValueError, match=r"^config must be an AutoencoderConfig"):
        latent.Autoencoder(UNetConfig())


@pytest.mark.parametrize("kwargs, match", [
    ({"channels": (8, 8)}, r"^AutoencoderConfig.channels must be three positive ints"),
    ({"channels": (8, 8, 8, 8)}, r"^AutoencoderConfig.channels"),
    ({"channels": (8, 8, 6)}, r"^AutoencoderConfig.channels must be three positive ints divisible by groups=8"),
    ({"channels": (8, 0, 8)}, r"^AutoencoderConfig.channels"),
    ({"channels": (8.0, 8, 8)}, r"^AutoencoderConfig.channels"),
    ({"latent_channels": 0}, r"^AutoencoderConfig.latent_channels must be a positive int"),
    ({"latent_channels": True}, r"^AutoencoderConfig.latent_channels"),
    ({"latent_channels": 4.0}, r"^AutoencoderConfig.latent_channels")])
def test_autoencoder_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        latent.AutoencoderConfig(**kwargs)


@pytest.mark.parametrize("groups", [0, "8"])
def test_autoencoder_config_validates_groups(groups):
    with pytest.raises(ValueError, match=r"groups"):
        latent.AutoencoderConfig(groups=groups)


# ---------------------------------------------------------------------------------------------- scale factor
def test_scale_factor_is_one_over_the_sample_std_with_bessels_correction():
    """torch's std divides by n − 1 (numpy's ddof=1); on 8 numbers ddof 0 and 1 differ by √(8/7) ≈ 7 %."""
    z = torch.tensor([[[[0.3, -1.2], [2.0, 0.7]]], [[[0.1, 0.1], [-0.4, 1.6]]]])      # (2, 1, 2, 2)
    s = latent.scale_factor(z)
    assert isinstance(s, float)
    assert s == pytest.approx(1 / np.std(z.numpy().astype(np.float64), ddof=1), rel=1e-6)
    assert s != pytest.approx(1 / np.std(z.numpy().astype(np.float64), ddof=0), rel=1e-3)


def test_scaled_latents_have_unit_std():
    z = torch.randn(64, 4, 8, 8, generator=torch.Generator().manual_seed(2)) * 0.37 + 0.2
    s = latent.scale_factor(z)
    assert s == pytest.approx(1 / np.std(z.numpy().astype(np.float64), ddof=1), rel=1e-5)
    assert float((z * s).std()) == pytest.approx(1.0, abs=1e-5)
    assert s == pytest.approx(1 / 0.37, rel=0.03)                # the std the latents were drawn with
    assert latent.scale_factor(z.double()) == pytest.approx(s, rel=1e-5)


def test_scale_factor_bad_input():
    with pytest.raises(ValueError, match=r"^the latents have zero spread"):
        latent.scale_factor(torch.full((4, 4, 8, 8), 0.5))
    for bad in (torch.randn(4, 8, 8), torch.randn(256), torch.zeros(1, 1, 1, 1), [[1.0, 2.0]]):
        with pytest.raises(ValueError, match=r"^latents must be a \(B, C, h, w\) tensor of encodings"):
            latent.scale_factor(bad)


# ---------------------------------------------------------------------------------------------- decoding
class IdentityAE:
    """A stand-in autoencoder: decode returns its input, so decode_latents shows what it hands over."""

    def decode(self, z):
        return z.clone()


def test_decode_latents_divides_by_the_scale():
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(latent.decode_latents(IdentityAE(), z, 4.0), z / 4.0)
    torch.testing.assert_close(latent.decode_latents(IdentityAE(), z, 2), z / 2)
    ae = _tiny_ae()
    with torch.no_grad():
        torch.testing.assert_close(latent.decode_latents(ae, z, 0.5), ae.decode(z * 2))
    for bad in (0.0, -1.0, True, "2", float("nan"), float("inf"), None):
        with pytest.raises(ValueError, match=r"^scale must be the positive scale factor"):
            latent.decode_latents(IdentityAE(), z, bad)


# ---------------------------------------------------------------------------------------------- sampling
class ZeroEps(nn.Module):
    """ε_θ = 0 for every (x_t, t, y): deterministic DDIM then keeps x̂0 = x_T / √ᾱ_{T-1} to the end."""

    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))

    def forward(self, x, t, y=None):
        return torch.zeros_like(x) + 0 * self.p


def test_sample_latents_does_not_clip_x0():
    """With ε = 0: x̂0 = x_T/√ᾱ_{T-1}, then x_{t'} = √ᾱ_{t'}·x̂0 at each step and x̂0 at the end.

    ᾱ_{49} ≈ 0.6 for linear_betas(50), so x_T = ±0.95 ends at ≈ ±1.23: beyond 1, as latents may be.
    Clipping would give ±1."""
    d = GaussianDiffusion(BETAS, clip_x0=True)                   # the schedule's default is overridden
    labels = torch.tensor([1, 4])
    x_T = torch.full((2, 4, 8, 8), 0.95)
    x_T[1] *= -1
    out = latent.sample_latents(ZeroEps(), d, labels, w=2.0, num_steps=5, x_T=x_T)
    alpha_bar_last = float(torch.prod(1 - BETAS))                # float64, independent of the buffers
    torch.testing.assert_close(out, x_T / alpha_bar_last ** 0.5, rtol=1e-5, atol=1e-6)
    assert float(out.max()) > 1.2 and float(out.min()) < -1.2
    clipped = d.ddim_sample_loop(ZeroEps(), x_T=x_T, num_steps=5, y=labels, w=2.0, progress=False, clip_x0=True)
    assert float(clipped.abs().max()) <= 1 + 1e-6                # what the check above would catch


def _tiny_latent_unet(seed=0) -> UNet:
    torch.manual_seed(seed)
    model = UNet(UNetConfig(in_channels=4, channels=(8, 16), norm_groups=4, num_classes=10)).eval()
    nn.init.normal_(model.conv_out.weight, std=0.3)
    return model


def test_sample_latents_is_deterministic_given_x_T():
    model, d = _tiny_latent_unet(), GaussianDiffusion(BETAS)
    labels = torch.tensor([0, 3, 9])
    x_T = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    a = latent.sample_latents(model, d, labels, 2.0, 4, generator=torch.Generator().manual_seed(0), x_T=x_T)
    b = latent.sample_latents(model, d, labels, 2.0, 4, generator=torch.Generator().manual_seed(1), x_T=x_T)
    assert a.shape == (3, 4, 8, 8)
    torch.testing.assert_close(a, b, rtol=0, atol=0)            # η = 0: the generator draws nothing else
    assert not torch.allclose(a, latent.sample_latents(model, d, labels, 2.0, 4, x_T=-x_T))
    assert not torch.allclose(a, latent.sample_latents(model, d, labels, 0.0, 4, x_T=x_T))   # w is used
    # without x_T the generator draws it: the same seed gives the same latents
    c = latent.sample_latents(model, d, labels, 2.0, 4, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(c, latent.sample_latents(model, d, labels, 2.0, 4,
                                                        generator=torch.Generator().manual_seed(5)))
    small = latent.sample_latents(model, d, labels, 1.0, 2, latent_shape=(4, 4, 4))
    assert small.shape == (3, 4, 4, 4)


def test_sample_latents_refuses_x_T_of_the_wrong_shape():
    model, d = _tiny_latent_unet(), GaussianDiffusion(BETAS)
    labels = torch.tensor([0, 3])
    for bad in (torch.zeros(2, 4, 4, 4), torch.zeros(3, 4, 8, 8), torch.zeros(2, 1, 8, 8), [0.0]):
        with pytest.raises(ValueError, match=r"^x_T must be a tensor of shape \(2, 4, 8, 8\)"):
            latent.sample_latents(model, d, labels, 2.0, 3, x_T=bad)


@pytest.fixture
def no_checkpoint(monkeypatch):
    """Loading a checkpoint fails the test: bad arguments must be refused before one is needed."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("a checkpoint was loaded before the arguments were validated")
    monkeypatch.setattr(latent, "_LOADED", {})
    monkeypatch.setattr(latent, "load_latent", refuse)
    monkeypatch.setattr(latent, "load_autoencoder", refuse)


GOOD = torch.tensor([0, 7])


@pytest.mark.parametrize("kwargs, match", [
    ({"labels": torch.tensor([], dtype=torch.long)}, r"^labels must be a non-empty \(B,\) int64 tensor"),
    ({"labels": torch.tensor([1.0, 2.0])}, r"^labels must be a non-empty"),
    ({"labels": torch.tensor([3, 10])}, r"^labels must be classes 0–9; got values from 3 to 10"),
    ({"labels": torch.tensor([-1])}, r"^labels must be classes 0–9"),
    ({"labels": [1, 2]}, r"^labels must be a non-empty"),
    ({"labels": torch.tensor([True])}, r"^labels must be a non-empty"),
    ({"labels": GOOD, "w": "2"}, r"^w must be a finite float"),
    ({"labels": GOOD, "w": float("inf")}, r"^w must be a finite float"),
    ({"labels": GOOD, "num_steps": 0}, r"^num_steps must be an int in \[1, 1000\]"),
    ({"labels": GOOD, "num_steps": 3.0}, r"^num_steps must be an int")], ids=str)
def test_latent_sample_refuses_bad_input_before_loading(no_checkpoint, kwargs, match):
    with pytest.raises(ValueError, match=match):
        latent.sample(**kwargs)


def test_latent_sample_refuses_a_bad_seed_before_loading(no_checkpoint):
    with pytest.raises(ValueError, match=r"^seed must be an int"):
        latent.sample(GOOD, seed="1")


# ---------------------------------------------------------------------------------------------- shipped models
@pytest.mark.skipif(not ((ASSETS / "ae32.pt").exists() and (ASSETS / "ldm32.pt").exists()),
                    reason="ae32 and ldm32 are being built (python -m course_utils.pretrained build ae32 ldm32); "
                           "on once shipped")
class TestShippedLatent:
    def test_loads_as_recorded(self):
        ae, model, diffusion, scale, meta = latent.load_latent()
        assert isinstance(ae, latent.Autoencoder) and not ae.training and not model.training
        assert ae.config.latent_channels == 4 and model.config.in_channels == 4 and model.config.num_classes == 10
        assert diffusion.clip_x0 is False and scale == meta["scale_factor"] > 0
        assert meta["ae32_sha256"] == (ASSETS / "ae32.pt.sha256").read_text().split()[0]   # the pair belongs together
        for name in ("ae32", "ldm32"):
            rec = json.loads((ASSETS / f"{name}.json").read_text())
            assert rec["sha256"] == (ASSETS / f"{name}.pt.sha256").read_text().split()[0]

    def test_scale_factor_matches_the_training_encodings(self):
        from course_utils.data import load_fashion_mnist

        ae, _, _, scale, _ = latent.load_latent()
        z = latent.encode_dataset(ae, load_fashion_mnist(train=True, image_size=32, limit=2000).images)
        assert latent.scale_factor(z) == pytest.approx(scale, rel=0.05)

    def test_autoencoder_reconstructs_test_images_as_recorded(self):
        from course_utils.data import load_fashion_mnist

        ae, _ = latent.load_autoencoder()
        x = load_fashion_mnist(train=False, image_size=32, limit=200).images
        with torch.no_grad():
            mse = float(((ae.decode(ae.encode(x)) - x) ** 2).mean())
        rec = json.loads((ASSETS / "ae32.json").read_text())["evaluation"]
        assert mse <= 1.5 * rec["mse"] + 1e-3 and mse < 0.25 * float(x.var())

    def test_sample_is_decode_of_scaled_latents_and_reproducible(self):
        ae, model, diffusion, scale, _ = latent.load_latent()
        labels = torch.tensor([1, 5, 8])
        x = latent.sample(labels, w=2.0, seed=3, num_steps=5)
        assert x.shape == (3, 1, 32, 32) and float(x.abs().max()) <= 1
        z = latent.sample_latents(model, diffusion, labels, 2.0, 5, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(x, latent.decode_latents(ae, z, scale))
        torch.testing.assert_close(latent.sample(labels, w=2.0, seed=3, num_steps=5), x, rtol=0, atol=0)
        assert not torch.allclose(latent.sample(labels, w=2.0, seed=4, num_steps=5), x)

    def test_unguided_latents_have_about_unit_std(self):
        _, model, diffusion, _, _ = latent.load_latent()
        z = latent.sample_latents(model, diffusion, torch.arange(10).repeat(4), 0.0, 20,
                                  generator=torch.Generator().manual_seed(0))
        assert 0.6 < float(z.std()) < 1.4                       # the model was trained on unit-variance latents
