"""Checks for lesson 05 (time embeddings): sinusoidal_embedding, broadcasting-add, ResBlock, rearrange-pooling.

Each exercise's check is three steps (see :mod:`course_utils.checks._harness`): ``make_<name>`` builds
seeded inputs, ``run_<name>`` calls the learner's function (or class) on them, ``judge_<name>`` compares
with the package and names the classic mistake; ``check_<name>`` runs all three.
"""
from __future__ import annotations

import math

import torch
from einops import rearrange

from ..models import Downsample, ResBlock, sinusoidal_embedding
from . import _harness as h

__all__ = [
    "check_sinusoidal_embedding",
    "check_sinusoidal_embedding_rejects_odd_dim",
    "check_sinusoidal_embedding_neighbours",
    "check_add_time_embedding",
    "check_res_block",
    "check_rearrange_pool",
    "reference_add_time_embedding",
    "reference_rearrange_pool",
]


# ----------------------------------------------------------------------------------------------
# References: the package's functions, under the exercise's signature
# ----------------------------------------------------------------------------------------------
def reference_add_time_embedding(h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """h (B, C, H, W) + emb (B, C) broadcast over H, W — the line inside :class:`course_utils.models.ResBlock`."""
    return h + rearrange(emb, 'b c -> b c 1 1')


def reference_rearrange_pool(x: torch.Tensor) -> torch.Tensor:
    """Space-to-depth (B, C, H, W) → (B, 4C, H/2, W/2): the einops layer of ``Downsample(mode="rearrange")``."""
    return Downsample(x.shape[1], "rearrange").op[0](x)


def _reference_sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """The exercise's ``sinusoidal_embedding(t, dim)``: :func:`course_utils.models.sinusoidal_embedding`."""
    return sinusoidal_embedding(t, dim)


# ----------------------------------------------------------------------------------------------
# Exercise: sinusoidal_embedding  (Vaswani et al. 2017, §3.5)
# ----------------------------------------------------------------------------------------------
def _embedding_mistakes(t: torch.Tensor, dim: int) -> dict[str, torch.Tensor]:
    half = dim // 2
    tf = t.to(torch.float32)
    i = torch.arange(half, dtype=torch.float32)
    freqs = torch.exp(-math.log(10000.0) * i / half)
    args = tf[:, None] * freqs[None]
    out = {
        "the halves are swapped: the package puts the sin half first, then the cos half "
        "(torch.cat([sin, cos], dim=-1)).": torch.cat([args.cos(), args.sin()], dim=-1),
        "sin and cos are interleaved (sin, cos, sin, cos, …); the package concatenates them: the whole "
        "sin half first, then the whole cos half.": torch.stack([args.sin(), args.cos()], dim=-1).flatten(1),
        "the frequencies decay the other way: freq_i = exp(−ln(10000)·i/(dim/2)) starts at 1 for i = 0 and "
        "falls towards 1/10000.": torch.cat([(tf[:, None] * freqs.flip(0)).sin(),
                                             (tf[:, None] * freqs.flip(0)).cos()], dim=-1),
        "t was rounded or truncated to an integer: keep float timesteps as they are (t.float(), not t.long()).":
            sinusoidal_embedding(tf.floor(), dim),
        "the sin half is missing its partner: each half has dim/2 columns, and both use the same "
        "frequencies.": torch.cat([args.sin(), args.sin()], dim=-1),
        "one argument too many: the frequencies are 10000^(−i/(dim/2)), no extra factor 2π.":
            torch.cat([(2 * math.pi * args).sin(), (2 * math.pi * args).cos()], dim=-1),
    }
    if half > 1:
        f2 = torch.exp(-math.log(10000.0) * i / (half - 1))
        a2 = tf[:, None] * f2[None]
        out["off by one in the frequencies: divide i by dim/2, not dim/2 − 1 (the last frequency is "
            "10000^(−(dim/2−1)/(dim/2)), not exactly 1/10000)."] = torch.cat([a2.sin(), a2.cos()], dim=-1)
    f3 = torch.exp(-math.log(10000.0) * i / dim)
    a3 = tf[:, None] * f3[None]
    out["the exponent uses i/dim; the package uses i/(dim/2), one exponent per sin/cos pair."] = \
        torch.cat([a3.sin(), a3.cos()], dim=-1)
    return out


def make_sinusoidal_embedding(dim: int = 32, t=None, T: int = 1000, batch: int = 8, seed: int = 0) -> dict:
    if t is None:
        t = torch.randint(0, T, (batch,), generator=h.gen(seed))
    return {"dim": dim, "t": torch.as_tensor(t)}


def run_sinusoidal_embedding(inputs: dict, fn) -> dict:
    t_in = inputs["t"].clone()
    out = h.call(fn, t_in, inputs["dim"])
    return {"out": out, "t_after": t_in}


def judge_sinusoidal_embedding(inputs: dict, outputs: dict) -> None:
    r = h.Report("sinusoidal_embedding")
    dim, t = inputs["dim"], inputs["t"]
    kind = "float" if t.is_floating_point() else "int"
    shown = f"sinusoidal_embedding({kind} t of shape {h.fmt_shape(t.shape)}, dim={dim})"
    out = h.as_tensor(r, h.value(r, outputs["out"]), shown)
    if not torch.equal(outputs["t_after"], t):
        r.fail("your function changed t in place; compute a new tensor instead.")
    if out.ndim == 2 and out.shape == (dim, t.shape[0]) and dim != t.shape[0]:
        r.fail(f"{shown} has shape {tuple(out.shape)}: it is transposed; one row per timestep, (B, dim).")
    h.check_shape_dtype(r, out, (t.shape[0], dim), None, shown)
    if not out.is_floating_point():
        r.fail(f"{shown} has dtype {out.dtype}: the embedding is float32 (sines and cosines).")
    ref = sinusoidal_embedding(t, dim)
    h.diagnose(r, out.float(), ref, _embedding_mistakes(t, dim), rtol=1e-4, atol=1e-4, what=shown)
    r.ok(f"{shown}: shape {h.fmt_shape(ref.shape)}, sin half then cos half, matches "
         f"course_utils.models.sinusoidal_embedding")


check_sinusoidal_embedding = h.register(h.Check(
    "sinusoidal_embedding", make_sinusoidal_embedding, run_sinusoidal_embedding, judge_sinusoidal_embedding,
    reference=_reference_sinusoidal_embedding,
    doc="Check ``fn(t, dim) -> (B, dim)`` against :func:`course_utils.models.sinusoidal_embedding`.\n\n"
        "``t`` defaults to ``batch`` seeded int64 timesteps in {0, …, T-1}; pass a float tensor to test float t."))


# ----------------------------------------------------------------------------------------------
# Exercise: sinusoidal_embedding rejects an odd dim with a clear ValueError
# ----------------------------------------------------------------------------------------------
def make_sinusoidal_embedding_rejects_odd_dim(dim: int = 7) -> dict:
    if dim % 2 == 0:
        raise ValueError(f"check_sinusoidal_embedding_rejects_odd_dim needs an odd dim; got {dim}.")
    return {"dim": dim, "t": torch.arange(4)}


def run_sinusoidal_embedding_rejects_odd_dim(inputs: dict, fn) -> dict:
    raised = {"value_error": False, "not_implemented": False}

    def probe(t, dim):                   # records the error's class (subclasses included) before h.call
        try:
            return fn(t, dim)
        except NotImplementedError:
            raised["not_implemented"] = True
            raise
        except ValueError:
            raised["value_error"] = True
            raise

    out = h.call(probe if callable(fn) else fn, inputs["t"].clone(), inputs["dim"])
    return {"out": out, **raised}


def judge_sinusoidal_embedding_rejects_odd_dim(inputs: dict, outputs: dict) -> None:
    r = h.Report("sinusoidal_embedding")
    dim, outcome = inputs["dim"], outputs["out"]
    e = outcome["error"]              # warnings are not reported here: raising is what is checked
    if e is not None and e["type"] == "not callable":
        r.fail(f"expected a function, got {e['message']}.")
    if e is not None and (outputs["not_implemented"] or e["type"] == "NotImplementedError"):
        r.fail("still raises NotImplementedError: replace the `raise NotImplementedError()` line with your "
               "code, run that cell, then run this one again.")
    if e is not None and (outputs["value_error"] or e["type"] == "ValueError"):
        msg = e["message"].lower()
        if not any(w in msg for w in ("even", "odd", "half", "halves")):
            r.fail(f"dim={dim} raised ValueError({e['message']!r}); say why in the message, e.g. "
                   f"\"dim must be even (a sin half and a cos half); got dim={dim}\".")
        r.ok(f"sinusoidal_embedding(t, dim={dim}) raises ValueError: {e['message']}")
        return
    if e is not None:                 # some other error: not a clear one
        r.fail(f"dim={dim} raised {e['type']}: {e['message']}. Check dim first and raise a ValueError that says "
               f"dim must be even (a sin half and a cos half).")
    out = outcome["value"]
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else h.type_name(out)
    r.fail(f"dim={dim} is odd but your function returned {shape} without complaint; an odd width cannot be "
           f"split into a sin half and a cos half: raise ValueError(\"dim must be even …\").")


check_sinusoidal_embedding_rejects_odd_dim = h.register(h.Check(
    "sinusoidal_embedding_rejects_odd_dim", make_sinusoidal_embedding_rejects_odd_dim,
    run_sinusoidal_embedding_rejects_odd_dim, judge_sinusoidal_embedding_rejects_odd_dim,
    reference=_reference_sinusoidal_embedding,
    doc="An odd ``dim`` cannot be split into a sin half and a cos half: ``fn`` must raise a clear ValueError."))


# ----------------------------------------------------------------------------------------------
# Exercise: neighbouring timesteps get distinct embeddings
# ----------------------------------------------------------------------------------------------
def make_sinusoidal_embedding_neighbours(dim: int = 32, T: int = 1000) -> dict:
    return {"dim": dim, "T": T, "t": torch.arange(T)}


def run_sinusoidal_embedding_neighbours(inputs: dict, fn) -> dict:
    return {"out": h.call(fn, inputs["t"].clone(), inputs["dim"])}


def judge_sinusoidal_embedding_neighbours(inputs: dict, outputs: dict) -> None:
    r = h.Report("sinusoidal_embedding")
    dim, T = inputs["dim"], inputs["T"]
    shown = f"sinusoidal_embedding(arange({T}), dim={dim})"
    out = h.as_tensor(r, h.value(r, outputs["out"]), shown)
    h.check_shape_dtype(r, out, (T, dim), None, shown)
    gap = (out[1:].float() - out[:-1].float()).norm(dim=1)         # (T-1,)
    i = int(gap.argmin())
    if float(gap[i]) < 1e-3:
        r.fail(f"t = {i} and t = {i + 1} get the same embedding (distance {float(gap[i]):.2g}): the network "
               f"could not tell them apart. Use the raw timesteps (not t / T rounded, not t.long() of a "
               f"fraction) and frequencies that start at 1.")
    r.ok(f"all {T - 1} neighbouring pairs (t, t+1) have distinct embeddings (smallest distance "
         f"{float(gap.min()):.3f})")


check_sinusoidal_embedding_neighbours = h.register(h.Check(
    "sinusoidal_embedding_neighbours", make_sinusoidal_embedding_neighbours, run_sinusoidal_embedding_neighbours,
    judge_sinusoidal_embedding_neighbours, reference=_reference_sinusoidal_embedding,
    doc="Embeddings of neighbouring timesteps t and t+1 must differ (the network tells them apart)."))


# ----------------------------------------------------------------------------------------------
# Exercise: add_time_embedding  (h (B, C, H, W) + emb (B, C) broadcast over H, W)
# ----------------------------------------------------------------------------------------------
def make_add_time_embedding(shape=(4, 8, 5, 6), seed: int = 0) -> dict:
    B, C, _, _ = shape
    return {"shape": tuple(shape), "h": torch.randn(shape, generator=h.gen(seed)),
            "emb": torch.randn(B, C, generator=h.gen(seed + 1))}


def run_add_time_embedding(inputs: dict, fn) -> dict:
    x, emb = inputs["h"].clone(), inputs["emb"].clone()
    out = h.call(fn, x, emb)
    return {"out": out, "h_after": x, "emb_after": emb}


def judge_add_time_embedding(inputs: dict, outputs: dict) -> None:
    r = h.Report("add_time_embedding")
    shape, x, emb = inputs["shape"], inputs["h"], inputs["emb"]
    B, C, H, W = shape
    shown = f"add_time_embedding(h {h.fmt_shape(shape)}, emb {h.fmt_shape((B, C))})"
    out = h.as_tensor(r, h.value(r, outputs["out"]), shown)
    if not (torch.equal(outputs["h_after"], x) and torch.equal(outputs["emb_after"], emb)):
        r.fail("your function changed h or emb in place (+=); return h + … as a new tensor.")
    h.check_shape_dtype(r, out, shape, None, shown)
    ref = reference_add_time_embedding(x, emb)
    mistakes = {}
    if (H, W) == (B, C):
        mistakes["emb was broadcast over the wrong axes: h + emb lines emb's (B, C) up with h's last two axes "
                 "(H, W). Give it shape (B, C, 1, 1): rearrange(emb, 'b c -> b c 1 1')."] = x + emb
    if B == C:
        mistakes["the batch and channel axes of emb are swapped: image b must get row b of emb on its "
                 "channels: rearrange(emb, 'b c -> b c 1 1'), not 'b c -> c b 1 1'."] = \
            x + rearrange(emb, 'b c -> c b 1 1')
    mistakes["every image got the same shift: image b must get its own row emb[b] (per-image embedding)."] = \
        x + rearrange(emb[0], 'c -> 1 c 1 1')
    mistakes["emb was multiplied, not added: the time embedding is added to every pixel."] = \
        x * rearrange(emb, 'b c -> b c 1 1')
    h.diagnose(r, out, ref, mistakes, rtol=1e-6, atol=1e-6, what=shown)
    r.ok(f"{shown}: each image's (C,) embedding added to all {H}×{W} pixels of its channels")


check_add_time_embedding = h.register(h.Check(
    "add_time_embedding", make_add_time_embedding, run_add_time_embedding, judge_add_time_embedding,
    reference=reference_add_time_embedding,
    doc="Check ``fn(h, emb)``: h (B, C, H, W) plus emb (B, C) broadcast over H and W."))


# ----------------------------------------------------------------------------------------------
# Exercise: a residual block with a time embedding (a class: TimeResBlock)
# ----------------------------------------------------------------------------------------------
def _reference_block(inputs: dict) -> ResBlock:
    """The package's block with the weights of the inputs, in eval mode."""
    with torch.random.fork_rng(devices=[]):              # its own init is overwritten: leave the RNG alone
        ref = ResBlock(inputs["in_ch"], inputs["out_ch"], inputs["emb_dim"], inputs["groups"])
    ref.load_state_dict(inputs["state"])
    return ref.eval()


def make_res_block(in_ch: int = 16, out_ch: int = 32, emb_dim: int = 64, groups: int = 8, size: int = 8,
                   batch: int = 4, seed: int = 0) -> dict:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        ref = ResBlock(in_ch, out_ch, emb_dim, groups)
    with torch.no_grad():                       # random, non-trivial GroupNorm affine weights
        for m in ref.modules():
            if isinstance(m, torch.nn.GroupNorm):
                m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=h.gen(seed + 2)))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=h.gen(seed + 3)))
    return {"in_ch": in_ch, "out_ch": out_ch, "emb_dim": emb_dim, "groups": groups, "size": size,
            "batch": batch, "seed": seed,
            "state": {k: v.detach().clone() for k, v in ref.state_dict().items()},
            "x": torch.randn(batch, in_ch, size, size, generator=h.gen(seed + 4)),
            "emb": torch.randn(batch, emb_dim, generator=h.gen(seed + 5))}


def run_res_block(inputs: dict, cls) -> dict:
    """Build ``cls(in_ch, out_ch, emb_dim, groups)`` (seeded), load the inputs' weights, run it twice."""
    outputs: dict = {"built": None, "is_module": False, "type": None, "layout": None, "load": None,
                     "out": None, "out_shifted": None}
    box: dict = {}

    def build(*args):                 # keeps the learner's object; h.call keeps plain values only
        box["block"] = cls(*args)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(inputs["seed"])
        outputs["built"] = h.call(build if callable(cls) else cls,
                                  inputs["in_ch"], inputs["out_ch"], inputs["emb_dim"], inputs["groups"])
    if outputs["built"]["error"] is not None:
        return outputs
    block = box["block"]
    outputs["type"] = type(block).__name__
    outputs["is_module"] = isinstance(block, torch.nn.Module)
    if not outputs["is_module"]:
        return outputs
    outputs["layout"] = {k: tuple(v.shape) for k, v in block.state_dict().items()}
    outputs["load"] = h.call(block.load_state_dict, {k: v.clone() for k, v in inputs["state"].items()})
    outputs["load"]["value"] = None
    if outputs["load"]["error"] is not None:
        return outputs
    block.eval()
    with torch.no_grad():
        outputs["out"] = h.call(block, inputs["x"].clone(), inputs["emb"].clone())
        if outputs["out"]["error"] is None:
            outputs["out_shifted"] = h.call(block, inputs["x"].clone(), inputs["emb"].clone() + 1.0)
    return outputs


def judge_res_block(inputs: dict, outputs: dict) -> None:
    r = h.Report("TimeResBlock")
    in_ch, out_ch, emb_dim, groups = inputs["in_ch"], inputs["out_ch"], inputs["emb_dim"], inputs["groups"]
    batch, size, x, emb = inputs["batch"], inputs["size"], inputs["x"], inputs["emb"]
    shown = f"TimeResBlock(in_ch={in_ch}, out_ch={out_ch}, emb_dim={emb_dim}, groups={groups})"
    h.value(r, outputs["built"])
    if not outputs["is_module"]:
        r.fail(f"{shown} should be an nn.Module; got {outputs['type']}.")
    load = outputs["load"]
    if load["error"] is not None:
        r.fail(f"the package's weights do not fit your block: keep the layers built in __init__ "
               f"(norm1, conv1, emb_proj, norm2, conv2, skip) as they are. {load['error']['message'][:300]}")
    out = h.as_tensor(r, h.value(r, outputs["out"]), f"{shown}(x, emb)")
    h.check_shape_dtype(r, out, (batch, out_ch, size, size), None, f"{shown}(x {h.fmt_shape(x.shape)}, emb)")
    ref = _reference_block(inputs)
    with torch.no_grad():
        want = ref(x, emb)
        z = ref.conv1(ref.act(ref.norm1(x)))
        e = rearrange(ref.emb_proj(emb), 'b c -> b c 1 1')
        tail = lambda z: ref.conv2(ref.act(ref.norm2(z)))           # noqa: E731
        mistakes = {
            "the time embedding is missing: add rearrange(self.emb_proj(emb), 'b c -> b c 1 1') to h after "
            "the first conv.": ref.skip(x) + tail(z),
            "the skip connection is missing: return self.skip(x) + h (that sum is what makes the block "
            "residual).": tail(z + e),
            "the embedding was added after the second conv; add it between the two convs (after conv1), so "
            "the second conv can mix it with the features.": ref.skip(x) + tail(z) + e,
        }
    h.diagnose(r, out, want, mistakes, rtol=1e-4, atol=1e-5, what=f"{shown}(x, emb)")
    # the embedding must matter, per image
    out2 = h.as_tensor(r, h.value(r, outputs["out_shifted"]), f"{shown}(x, emb + 1)")
    if out2.shape == out.shape and torch.allclose(out2, out):
        r.fail("changing emb does not change the output: the block ignores the time embedding.")
    r.ok(f"{shown}: output {h.fmt_shape(want.shape)} matches course_utils.models.ResBlock with the same weights")


check_res_block = h.register(h.Check(
    "res_block", make_res_block, run_res_block, judge_res_block, reference=ResBlock,
    doc="Check a learner's residual block class against :class:`course_utils.models.ResBlock`.\n\n"
        "Both are built as ``cls(in_ch, out_ch, emb_dim, groups)``; the package block's weights are copied "
        "into the learner's (same layer names), then both run on the same seeded ``x`` and ``emb``."))


# ----------------------------------------------------------------------------------------------
# Exercise: rearrange_pool  (space-to-depth, Downsample(mode="rearrange"))
# ----------------------------------------------------------------------------------------------
def make_rearrange_pool(shape=(2, 3, 8, 6), seed: int = 0) -> dict:
    return {"shape": tuple(shape), "x": torch.randn(shape, generator=h.gen(seed))}


def run_rearrange_pool(inputs: dict, fn) -> dict:
    x_in = inputs["x"].clone()
    out = h.call(fn, x_in)
    return {"out": out, "x_after": x_in}


def judge_rearrange_pool(inputs: dict, outputs: dict) -> None:
    r = h.Report("rearrange_pool")
    shape, x = inputs["shape"], inputs["x"]
    B, C, H, W = shape
    shown = f"rearrange_pool(x {h.fmt_shape(shape)})"
    out = h.as_tensor(r, h.value(r, outputs["out"]), shown)
    if not torch.equal(outputs["x_after"], x):
        r.fail("your function changed x in place.")
    if tuple(out.shape) == (B, C, H // 2, W // 2):
        r.fail(f"{shown} has shape {tuple(out.shape)}: that is ordinary pooling, which throws 3 of every 4 "
               f"values away; rearrange-pooling keeps them all as channels: (B, 4C, H/2, W/2).")
    h.check_shape_dtype(r, out, (B, 4 * C, H // 2, W // 2), None, shown)
    ref = reference_rearrange_pool(x)
    mistakes = {
        "the channels are ordered (p1 p2 c); the package groups them as (c p1 p2): all four pixels of "
        "channel 0 first: 'b c (h p1) (w p2) -> b (c p1 p2) h w'.":
            rearrange(x, 'b c (h p1) (w p2) -> b (p1 p2 c) h w', p1=2, p2=2),
        "you took four quarter-images ('(p1 h)') instead of 2×2 patches ('(h p1)'): each output pixel must "
        "hold one 2×2 neighbourhood: 'b c (h p1) (w p2) -> b (c p1 p2) h w'.":
            rearrange(x, 'b c (p1 h) (p2 w) -> b (c p1 p2) h w', p1=2, p2=2),
        "p1 and p2 are swapped in the output: use (c p1 p2), p1 being the row offset inside the patch.":
            rearrange(x, 'b c (h p1) (w p2) -> b (c p2 p1) h w', p1=2, p2=2),
    }
    h.diagnose(r, out, ref, mistakes, rtol=0, atol=0, what=shown)
    r.ok(f"{shown}: (B, 4C, H/2, W/2) = {h.fmt_shape(ref.shape)}, every pixel kept, matches "
         f"Downsample(mode='rearrange')")


check_rearrange_pool = h.register(h.Check(
    "rearrange_pool", make_rearrange_pool, run_rearrange_pool, judge_rearrange_pool,
    reference=reference_rearrange_pool,
    doc="Check ``fn(x)``: space-to-depth, (B, C, H, W) → (B, 4C, H/2, W/2), as ``Downsample(mode=\"rearrange\")``."))
