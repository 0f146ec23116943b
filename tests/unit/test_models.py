"""The U-Net family: shapes over a sweep of configs, the time and class conditioning, the skip connections,
the sinusoidal embedding against numpy, label dropping by Monte-Carlo, configs that survive a save, and
a clear ValueError for every misuse."""
import itertools
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from course_utils.models import (AttentionBlock, Downsample, DownBlock, ResBlock, SinusoidalTimeEmbedding,
                                 UNet, UNetConfig, UpBlock, Upsample, count_parameters, drop_labels,
                                 sinusoidal_embedding)

TINY = (8, 16)


def tiny(seed: int = 0, **kw) -> UNet:
    """A seeded U-Net with channels (8, 16) whose zero-initialised output conv is made random,
    so that the output (and its gradient) depends on the input."""
    torch.manual_seed(seed)
    model = UNet(channels=kw.pop("channels", TINY), **kw)
    nn.init.normal_(model.conv_out.weight, std=0.1)
    return model.eval()


def images(b=3, c=1, s=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, s, s, generator=g) * 2 - 1


# ------------------------------------------------------------------ shapes over a sweep of configs
SWEEP = list(itertools.product([None, 10], [False, True], ["rearrange", "conv"]))


@pytest.mark.parametrize("num_classes,attention,downsample", SWEEP)
def test_output_shape_equals_input_shape(num_classes, attention, downsample):
    model = tiny(num_classes=num_classes, attention=attention, downsample=downsample)
    for size, batch in itertools.product([16, 28, 32], [1, 3]):
        x = images(batch, 1, size)
        t = torch.randint(0, 1000, (batch,))
        y = torch.randint(0, 10, (batch,)) if num_classes else None
        with torch.no_grad():
            out = model(x, t, y)
        assert out.shape == x.shape and out.dtype == x.dtype, (size, batch)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("kw", [
    dict(upsample="convtranspose"),
    dict(num_res_blocks=2, attention=True),
    dict(channels=(16, 32), in_channels=3),
    dict(in_channels=3, out_channels=6, downsample="conv", upsample="convtranspose"),
    dict(channels=(8, 16, 32), time_emb_dim=16, dropout=0.1),
    dict(time_embedding=False),
    dict(time_embedding=False, num_classes=4),
])
def test_more_configs_keep_the_spatial_shape(kw):
    model = tiny(**kw)
    cfg = model.config
    x = images(2, cfg.in_channels, 16)
    with torch.no_grad():
        out = model(x, torch.tensor([0, 999]))
    assert out.shape == (2, cfg.resolved_out_channels, 16, 16)


def test_default_config():
    model = UNet()
    assert model.config == UNetConfig() and model.null_class is None
    # measured: UNet() has 1,892,193 trainable parameters (channels (32, 64, 128), one ResBlock per level)
    assert 300_000 < count_parameters(model) < 10_000_000
    with torch.no_grad():
        for size in (16, 28, 32):
            x = images(2, 1, size)
            assert model(x, torch.tensor([0, 999])).shape == x.shape
    assert UNet(UNetConfig(), num_classes=10).null_class == 10


def test_untrained_model_predicts_zero_noise():
    """conv_out is zero-initialised, so a fresh model predicts ε = 0 (the loss starts at E[ε²] = 1)."""
    model = UNet(channels=TINY)
    with torch.no_grad():
        assert torch.equal(model(images(), torch.tensor([1, 2, 3])), torch.zeros(3, 1, 16, 16))


# ------------------------------------------------------------------ time and class conditioning
def test_timeless_model_ignores_t():
    model = tiny(time_embedding=False)
    assert model.time_mlp is None and model.time_embed is None
    x = images()
    with torch.no_grad():
        a = model(x)
        b = model(x, torch.tensor([0, 0, 0]))
        c = model(x, torch.tensor([500, 10, 999]))
    assert a.abs().sum() > 0
    assert torch.equal(a, b) and torch.equal(a, c)


def test_time_model_output_depends_on_t():
    model = tiny()
    x = images()
    with torch.no_grad():
        a = model(x, torch.zeros(3, dtype=torch.long))
        b = model(x, torch.full((3,), 500))
    assert (a - b).abs().max() > 1e-3


def test_scalar_t_is_broadcast():
    model = tiny()
    x = images()
    with torch.no_grad():
        ref = model(x, torch.full((3,), 7))
        assert torch.equal(model(x, 7), ref)
        assert torch.equal(model(x, torch.tensor(7)), ref)


def test_null_class():
    model = tiny(num_classes=10)
    assert model.null_class == 10
    assert model.class_emb.num_embeddings == 11          # 10 classes + the learned ∅
    x, t = images(), torch.tensor([3, 400, 999])
    with torch.no_grad():
        none = model(x, t)
        null = model(x, t, torch.full((3,), 10))
        three = model(x, t, torch.full((3,), 3))
        assert torch.equal(model(x, t, 3), three)         # an int label is broadcast
    assert torch.equal(none, null)
    assert (three - null).abs().max() > 1e-3              # the label changes the prediction


def test_class_embedding_is_added_to_the_time_embedding():
    """With the class embedding zeroed, a conditional model equals the unconditional one."""
    cond, uncond = tiny(seed=1, num_classes=10), tiny(seed=1)
    nn.init.zeros_(cond.class_emb.weight)
    uncond.load_state_dict({k: v for k, v in cond.state_dict().items() if not k.startswith("class_emb")})
    x, t = images(), torch.tensor([3, 400, 999])
    with torch.no_grad():
        assert torch.allclose(cond(x, t, torch.tensor([0, 5, 9])), uncond(x, t), atol=1e-6)


# ------------------------------------------------------------------ skip connections
def test_skip_connections_carry_the_gradient_without_the_bottleneck():
    """Cut the middle of the U-Net: the output still depends on x, only through the skips."""
    model = tiny(channels=(8, 16, 32))
    model.mid_res2.register_forward_hook(lambda mod, inp, out: torch.zeros_like(out))
    x = images().requires_grad_(True)
    model(x, torch.tensor([1, 2, 3])).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # the cut is real: the middle gets no gradient, yet x does, through the concatenated skips
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.mid_res1.parameters())


def test_zeroing_the_finest_skip_changes_the_output():
    model = tiny()
    x, t = images(), torch.tensor([1, 2, 3])
    first_up = model.up[-1]["res"][0]                     # sees cat([upsampled h, skip]) at full size
    skip_ch = model.config.channels[0]
    with torch.no_grad():
        ref = model(x, t)
        handle = first_up.register_forward_pre_hook(
            lambda mod, args: (torch.cat([args[0][:, :-skip_ch], torch.zeros_like(args[0][:, -skip_ch:])], 1),
                               *args[1:]))
        cut = model(x, t)
        handle.remove()
    assert first_up.norm1.num_channels == TINY[1] + TINY[0]
    assert (ref - cut).abs().max() > 1e-3


def test_every_parameter_gets_a_gradient():
    model = tiny(num_classes=10, attention=True, num_res_blocks=2).train()
    out = model(images(), torch.tensor([1, 2, 3]), torch.tensor([0, 4, 10]))
    out.square().mean().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert dead == []


# ------------------------------------------------------------------ sinusoidal time embedding
def test_sinusoidal_embedding_against_numpy():
    t, dim = np.array([0, 1, 7, 250, 999]), 16
    half = dim // 2
    ref = np.zeros((len(t), dim))
    for r, tt in enumerate(t):
        for i in range(half):
            freq = math.exp(-math.log(10000) * i / half)
            ref[r, i] = math.sin(tt * freq)               # sin half first …
            ref[r, half + i] = math.cos(tt * freq)        # … then the cos half
    out = sinusoidal_embedding(torch.from_numpy(t), dim)
    assert out.shape == (5, 16) and out.dtype == torch.float32
    assert np.allclose(out.numpy(), ref, atol=2e-4)
    assert torch.equal(SinusoidalTimeEmbedding(dim)(torch.from_numpy(t)), out)
    assert torch.equal(out[0], torch.cat([torch.zeros(half), torch.ones(half)]))


def test_sinusoidal_embedding_int_and_float_t_agree():
    t = torch.tensor([0, 3, 500, 999])
    assert torch.equal(sinusoidal_embedding(t, 32), sinusoidal_embedding(t.float(), 32))
    assert torch.equal(SinusoidalTimeEmbedding(32)(t.int()), SinusoidalTimeEmbedding(32)(t.double()))


def test_neighbouring_timesteps_have_distinct_embeddings():
    e = sinusoidal_embedding(torch.arange(1000), 32)
    assert (e[1:] - e[:-1]).norm(dim=1).min() > 0.1
    d = torch.cdist(e.double(), e.double()) + torch.eye(1000, dtype=torch.float64) * 1e9
    assert d.min() > 1e-3                                  # all 1000 embeddings are different


@pytest.mark.parametrize("dim", [7, 1, 0])
def test_odd_embedding_dim_raises(dim):
    with pytest.raises(ValueError, match="even dim"):
        SinusoidalTimeEmbedding(dim)
    with pytest.raises(ValueError, match="even dim"):
        sinusoidal_embedding(torch.arange(3), dim)


def test_sinusoidal_embedding_needs_1d_t():
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        sinusoidal_embedding(torch.zeros(3, 1), 8)


# ------------------------------------------------------------------ building blocks
def test_resblock_shapes_skip_and_embedding():
    torch.manual_seed(0)
    x, emb = images(2, 8, 8), torch.randn(2, 32)
    same, wider = ResBlock(8, 8, 32), ResBlock(8, 16, 32)
    assert isinstance(same.skip, nn.Identity) and isinstance(wider.skip, nn.Conv2d)
    assert wider(x, emb).shape == (2, 16, 8, 8)
    # the embedding shifts each channel uniformly over H, W; the next GroupNorm keeps that shift only
    # when a group holds several channels (here 4 per group), so groups=2 shows the embedding at work
    film = ResBlock(8, 8, 32, groups=2)
    with torch.no_grad():
        assert (film(x, emb) - film(x, torch.randn(2, 32))).abs().max() > 1e-3
        plain = ResBlock(8, 16, None)
        assert plain(x).shape == (2, 16, 8, 8)
    with pytest.raises(ValueError, match="pass the"):
        same(x)
    with pytest.raises(ValueError, match="emb_dim=None"):
        plain(x, emb)
    with pytest.raises(ValueError, match="divisible by groups"):
        ResBlock(12, 16, None)


def test_rearrange_downsample_is_space_to_depth():
    torch.manual_seed(0)
    x = images(2, 3, 8)
    down = Downsample(3, "rearrange")
    s2d = down.op[0](x)                                    # (B, 4C, H/2, W/2) before the 1x1 conv
    for c, p1, p2 in itertools.product(range(3), range(2), range(2)):
        assert torch.equal(s2d[:, c * 4 + p1 * 2 + p2], x[:, c, p1::2, p2::2])
    for mode in ("rearrange", "conv"):
        assert Downsample(8, mode, out_channels=16)(images(2, 8, 8)).shape == (2, 16, 4, 4)
    for mode in ("nearest", "convtranspose"):
        assert Upsample(8, mode)(images(2, 8, 4)).shape == (2, 8, 8, 8)
    with pytest.raises(ValueError, match="Downsample mode"):
        Downsample(8, "maxpool")
    with pytest.raises(ValueError, match="Upsample mode"):
        Upsample(8, "bilinear")


def test_attention_block_against_explicit_softmax():
    torch.manual_seed(0)
    block = AttentionBlock(16, heads=4)
    x = torch.randn(2, 16, 4, 4)
    with torch.no_grad():
        out = block(x)
        q, k, v = block.qkv(block.norm(x)).reshape(2, 3, 4, 4, 16).unbind(1)   # (B, heads, d, H·W)
        w = torch.softmax(torch.einsum("bhdi,bhdj->bhij", q, k) / math.sqrt(4), dim=-1)
        ref = x + block.proj(torch.einsum("bhij,bhdj->bhdi", w, v).reshape(2, 16, 4, 4))
    assert torch.allclose(out, ref, atol=1e-5)
    with pytest.raises(ValueError, match="heads"):
        AttentionBlock(16, heads=3)


def test_down_and_up_blocks_build_the_recap_unet():
    torch.manual_seed(0)
    for down_mode, up_mode in [("rearrange", "nearest"), ("conv", "convtranspose")]:
        conv_in = nn.Conv2d(1, 8, 3, padding=1)
        d1, d2 = DownBlock(8, 16, downsample=down_mode), DownBlock(16, 32, downsample=down_mode)
        u1, u0 = UpBlock(32, 16, 16, upsample=up_mode), UpBlock(16, 8, 8, upsample=up_mode)
        x = images(2, 1, 28)
        h0 = conv_in(x)                                    # (2, 8, 28, 28)
        h1 = d1(h0)                                        # (2, 16, 14, 14)
        h2 = d2(h1)                                        # (2, 32, 7, 7)
        assert h1.shape == (2, 16, 14, 14) and h2.shape == (2, 32, 7, 7)
        out = u0(u1(h2, h1), h0)
        assert out.shape == (2, 8, 28, 28)
        out.sum().backward()
        assert conv_in.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="skip must have shape"):
        u1(h2, h0)


# ------------------------------------------------------------------ misuse → ValueError
@pytest.fixture(scope="module")
def cond_model():
    torch.manual_seed(0)
    return UNet(channels=(8, 16, 32), num_classes=10)


MISUSE = [
    (lambda m: m(np.zeros((2, 1, 16, 16), np.float32), 0), "torch.Tensor"),
    (lambda m: m(torch.zeros(1, 16, 16), 0), r"4-D .*unsqueeze\(1\)"),
    (lambda m: m(torch.zeros(2, 1, 16, 16, dtype=torch.uint8), 0), "floating-point"),
    (lambda m: m(torch.zeros(2, 3, 16, 16), 0), "in_channels=1"),
    (lambda m: m(torch.zeros(2, 1, 30, 30), 0), r"multiples of 4 .*16, 28 and 32 px work with channels=\(8, 16, 32\)"),
    (lambda m: m(torch.zeros(2, 1, 16, 18), 0), r"got 16x18 px"),
    (lambda m: m(torch.zeros(2, 1, 16, 16, device="meta"), 0), "weights are on cpu"),
    (lambda m: m(torch.zeros(2, 1, 16, 16)), "time embedding"),
    (lambda m: m(torch.zeros(2, 1, 16, 16), torch.zeros(2, 1, dtype=torch.long)), r"t must have shape \(B,\)"),
    (lambda m: m(torch.zeros(2, 1, 16, 16), torch.zeros(3, dtype=torch.long)), r"t must have shape \(B,\) = \(2,\)"),
    (lambda m: m(torch.zeros(2, 1, 16, 16), torch.tensor([True, False])), "timesteps"),
    (lambda m: m(torch.zeros(2, 1, 16, 16), [1, 2]), "timesteps"),
    (lambda m: m(torch.zeros(2, 1, 16, 16), 0, torch.tensor([1.0, 2.0])), "integer"),
    (lambda m: m(torch.zeros(2, 1, 16, 16), 0, torch.tensor([1, 2, 3])), r"y must have shape \(B,\)"),
    (lambda m: m(torch.zeros(2, 1, 16, 16), 0, torch.tensor([1, 11])), r"\[0, 10\].*null class"),
    (lambda m: m(torch.zeros(2, 1, 16, 16), 0, torch.tensor([-1, 3])), r"\[0, 10\]"),
]


@pytest.mark.parametrize("call,pattern", MISUSE)
def test_misuse_raises_a_clear_value_error(cond_model, call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call(cond_model)


def test_labels_for_an_unconditional_model_raise():
    with pytest.raises(ValueError, match="unconditional"):
        UNet(channels=TINY)(torch.zeros(2, 1, 16, 16), 0, torch.tensor([1, 2]))


def test_null_class_label_is_allowed(cond_model):
    with torch.no_grad():
        assert cond_model(torch.zeros(2, 1, 16, 16), 0, torch.tensor([10, 0])).shape == (2, 1, 16, 16)


def test_size_message_for_deeper_models():
    with pytest.raises(ValueError, match=r"multiples of 8 .*16, 32 and 64 px work"):
        UNet(channels=(8, 8, 8, 8))(torch.zeros(1, 1, 28, 28), 0)


@pytest.mark.parametrize("kw,pattern", [
    (dict(channels=()), r"UNetConfig\.channels must be a non-empty tuple"),
    (dict(channels=(8, -16)), r"UNetConfig\.channels .*got \(8, -16\)"),
    (dict(channels=(12, 16)), r"UNetConfig\.channels .*divisible by norm_groups=8.*\[12\]"),
    (dict(channels=(3, 6), norm_groups=3), r"UNetConfig\.channels .*first entry is even"),
    (dict(time_emb_dim=33), r"UNetConfig\.time_emb_dim must be .*even.*got 33"),
    (dict(downsample="maxpool"), r"UNetConfig\.downsample must be one of \('rearrange', 'conv'\); got 'maxpool'"),
    (dict(upsample="bilinear"), r"UNetConfig\.upsample must be one of"),
    (dict(num_classes=0), r"UNetConfig\.num_classes must be None .*got 0"),
    (dict(class_dropout_prob=1.0), r"UNetConfig\.class_dropout_prob must be a float in \[0, 1\).*got 1\.0"),
    (dict(class_dropout_prob=-0.1), r"UNetConfig\.class_dropout_prob"),
    (dict(num_res_blocks=0), r"UNetConfig\.num_res_blocks must be an int >= 1; got 0"),
    (dict(in_channels=0), r"UNetConfig\.in_channels"),
    (dict(norm_groups=0), r"UNetConfig\.norm_groups"),
    (dict(dropout=1.0), r"UNetConfig\.dropout"),
    (dict(attention="yes"), r"UNetConfig\.attention must be True or False"),
])
def test_bad_config_raises(kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        UNetConfig(**kw)
    with pytest.raises(ValueError, match=pattern):
        UNet(**kw)


def test_unknown_option_and_bad_config_type():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['chanels'\]"):
        UNet(chanels=(8, 16))
    with pytest.raises(ValueError, match="config must be a UNetConfig"):
        UNet("small")
    with pytest.raises(ValueError, match="no field"):
        UNetConfig.from_dict({"channels": [8, 16], "widths": 3})


# ------------------------------------------------------------------ config round trip
def _plain(v) -> bool:
    if isinstance(v, list):
        return all(_plain(e) for e in v)
    return v is None or isinstance(v, (bool, int, float, str))


def test_config_round_trip(tmp_path):
    cfg = UNetConfig(channels=(16, 32, 64), num_classes=10, attention=True, downsample="conv", dropout=0.1)
    d = cfg.to_dict()
    assert all(_plain(v) for v in d.values()) and d["channels"] == [16, 32, 64]
    assert UNetConfig.from_dict(d) == cfg
    assert UNetConfig.from_dict(json.loads(json.dumps(d))) == cfg
    assert d == cfg.to_dict()                               # from_dict did not mutate the dict
    torch.save({"config": d}, tmp_path / "cfg.pt")
    loaded = torch.load(tmp_path / "cfg.pt", weights_only=True)
    assert UNetConfig.from_dict(loaded["config"]) == cfg
    assert UNet(loaded["config"]).config == cfg
    assert UNetConfig(channels=[8, 16]).channels == (8, 16)
    assert UNet(cfg, channels=(8, 16)).config.channels == (8, 16) and cfg.channels == (16, 32, 64)


def test_count_parameters():
    model = tiny(num_classes=10)
    total = sum(p.numel() for p in model.parameters())
    assert count_parameters(model) == total
    model.class_emb.weight.requires_grad_(False)
    assert count_parameters(model) == total - 11 * model.time_emb_dim
    with pytest.raises(ValueError, match="nn.Module"):
        count_parameters([1, 2])


# ------------------------------------------------------------------ drop_labels
def test_drop_labels_rate_matches_p():
    n, p = 20_000, 0.2
    y = torch.arange(n) % 10
    out = drop_labels(y, p, null_class=10, generator=torch.Generator().manual_seed(0))
    dropped = out == 10
    rate = float(dropped.float().mean())
    se = math.sqrt(p * (1 - p) / n)
    assert abs(rate - p) < 4 * se
    assert torch.equal(out[~dropped], y[~dropped])          # kept labels are untouched


def test_drop_labels_p0_p1_copy_dtype_and_seed():
    y = torch.tensor([0, 3, 9, 1], dtype=torch.int32)
    out = drop_labels(y, 0.0, 10)
    assert out.dtype == torch.int64 and torch.equal(out, y.long())
    y64 = y.long()
    kept = drop_labels(y64, 0.0, 10)
    kept[0] = 5
    assert y64[0] == 0                                     # a copy, never the caller's tensor
    assert torch.equal(drop_labels(y, 1.0, 10), torch.full((4,), 10))
    big = torch.arange(1000) % 10
    a = drop_labels(big, 0.5, 10, generator=torch.Generator().manual_seed(1))
    b = drop_labels(big, 0.5, 10, generator=torch.Generator().manual_seed(1))
    c = drop_labels(big, 0.5, 10, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("args,pattern", [
    ((torch.tensor([1, 2]), 1.5, 10), r"p must be a float in \[0, 1\]"),
    ((torch.tensor([1, 2]), -0.1, 10), r"p must be a float in \[0, 1\]"),
    ((torch.tensor([1.0, 2.0]), 0.1, 10), "integer tensor"),
    ((torch.tensor([[1, 2]]), 0.1, 10), r"shape \(B,\)"),
    ((torch.tensor([1, 2]), 0.1, None), "null_class"),
])
def test_drop_labels_misuse(args, pattern):
    with pytest.raises(ValueError, match=pattern):
        drop_labels(*args)
