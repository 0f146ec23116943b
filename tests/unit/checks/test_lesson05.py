"""course_utils.checks, lesson 05 (time embeddings): each check passes the right function, names each classic
mistake, writes only to stdout, returns None, and its three steps (make → run → judge) work apart, with the
outputs carried through torch.save / torch.load(weights_only=True) as a grader carries them."""
from __future__ import annotations

import math

import pytest
import torch
from einops import rearrange as _l05_rearrange

from course_utils import checks
from course_utils.models import ResBlock as _L05ResBlock, sinusoidal_embedding as _l05_emb

from check_support import fails, run, separates


def _l05_emb_variant(order="sin_cos", denom="half", cast=None, check_odd=True):
    def fn(t, dim):
        if check_odd and dim % 2:
            raise ValueError(f"dim must be even; got {dim}")
        half = dim // 2
        i = torch.arange(half, dtype=torch.float32)
        d = {"half": half, "half-1": max(half - 1, 1), "dim": dim}[denom]
        freqs = torch.exp(-math.log(10000.0) * i / d)
        tt = t.long().float() if cast == "long" else t.float()
        a = tt[:, None] * freqs[None]
        if order == "interleave":
            return torch.stack([a.sin(), a.cos()], dim=-1).flatten(1)
        parts = [a.sin(), a.cos()] if order == "sin_cos" else [a.cos(), a.sin()]
        return torch.cat(parts, dim=-1)
    return fn


def test_lesson05_embedding_right(capsys):
    run(checks.check_sinusoidal_embedding, _l05_emb)
    run(checks.check_sinusoidal_embedding, _l05_emb_variant(), dim=10, t=torch.tensor([0.5, 1.25, 7.75]))
    run(checks.check_sinusoidal_embedding_rejects_odd_dim, _l05_emb, dim=9)
    run(checks.check_sinusoidal_embedding_neighbours, _l05_emb)
    out = capsys.readouterr()
    assert out.err == "" and out.out.count("✓") == 4 and "✗" not in out.out


@pytest.mark.parametrize("fn, kwargs, match", [
    (_l05_emb_variant(order="cos_sin"), {}, "halves are swapped"),
    (_l05_emb_variant(order="interleave"), {}, "interleaved"),
    (_l05_emb_variant(denom="half-1"), {}, "off by one"),
    (_l05_emb_variant(denom="dim"), {}, "i/dim"),
    (_l05_emb_variant(cast="long"), {"t": torch.tensor([0.5, 1.5, 2.25])}, "rounded or truncated"),
    (lambda t, dim: _l05_emb(t, dim).T, {"dim": 16}, "transposed"),
])
def test_lesson05_embedding_mistakes(capsys, fn, kwargs, match):
    fails(capsys, checks.check_sinusoidal_embedding, fn, match=match, **kwargs)


def test_lesson05_odd_dim_must_raise_clear_error(capsys):
    fails(capsys, checks.check_sinusoidal_embedding_rejects_odd_dim, _l05_emb_variant(check_odd=False),
          match="without complaint")

    def vague(t, dim):
        if dim % 2:
            raise ValueError("bad")
        return _l05_emb(t, dim)

    fails(capsys, checks.check_sinusoidal_embedding_rejects_odd_dim, vague, match="say why")

    def index_error(t, dim):
        raise IndexError("out of range")

    fails(capsys, checks.check_sinusoidal_embedding_rejects_odd_dim, index_error, match="IndexError")


def test_lesson05_odd_dim_edge_cases(capsys):
    """A ValueError subclass counts as a ValueError; NotImplementedError and a non-function are explained;
    an even dim is the caller's mistake (ValueError before anything runs); warnings are not reported."""
    class DimError(ValueError):
        pass

    def subclass(t, dim):
        raise DimError("dim must be even")

    run(checks.check_sinusoidal_embedding_rejects_odd_dim, subclass)
    assert "✓" in capsys.readouterr().out

    def todo(t, dim):
        raise NotImplementedError()

    fails(capsys, checks.check_sinusoidal_embedding_rejects_odd_dim, todo, match="still raises NotImplementedError")
    fails(capsys, checks.check_sinusoidal_embedding_rejects_odd_dim, 3, match="expected a function, got int")
    with pytest.raises(ValueError, match="needs an odd dim; got 8"):
        checks.check_sinusoidal_embedding_rejects_odd_dim(_l05_emb, dim=8)

    def noisy(t, dim):
        import warnings
        warnings.warn("odd dim")
        raise ValueError("dim must be even")

    run(checks.check_sinusoidal_embedding_rejects_odd_dim, noisy)
    out = capsys.readouterr()
    assert out.err == "" and "note:" not in out.out and "✓" in out.out


def test_lesson05_embedding_in_place_and_dtype(capsys):
    def in_place(t, dim):
        out = _l05_emb(t, dim)
        t.add_(1)
        return out

    fails(capsys, checks.check_sinusoidal_embedding, in_place, match="changed t in place")
    fails(capsys, checks.check_sinusoidal_embedding, lambda t, dim: _l05_emb(t, dim).long(), match="dtype")


def test_lesson05_neighbours_distinct(capsys):
    fails(capsys, checks.check_sinusoidal_embedding_neighbours,
          lambda t, dim: _l05_emb((t // 2) * 2, dim), match="same embedding")


def test_lesson05_add_time_embedding(capsys):
    good = lambda h, emb: h + _l05_rearrange(emb, 'b c -> b c 1 1')      # noqa: E731
    run(checks.check_add_time_embedding, good)
    run(checks.check_add_time_embedding, good, shape=(4, 4, 4, 4))
    fails(capsys, checks.check_add_time_embedding, lambda h, emb: h + emb, shape=(4, 4, 4, 4),
          match="wrong axes")
    fails(capsys, checks.check_add_time_embedding, lambda h, emb: h + _l05_rearrange(emb, 'b c -> c b 1 1'),
          shape=(4, 4, 4, 4), match="swapped")
    fails(capsys, checks.check_add_time_embedding, lambda h, emb: h * emb[:, :, None, None], match="multiplied")
    fails(capsys, checks.check_add_time_embedding, lambda h, emb: h + emb[0][None, :, None, None],
          match="same shift")
    fails(capsys, checks.check_add_time_embedding, lambda h, emb: h + emb, match="raised RuntimeError")


class _L05Block(_L05ResBlock):
    """The package's block with one mistake in forward."""

    mistake = None

    def forward(self, x, emb):
        h = self.conv1(self.act(self.norm1(x)))
        e = _l05_rearrange(self.emb_proj(emb), 'b c -> b c 1 1')
        if self.mistake != "no_emb" and self.mistake != "late_emb":
            h = h + e
        h = self.conv2(self.act(self.norm2(h)))
        if self.mistake == "late_emb":
            h = h + e
        return h if self.mistake == "no_skip" else self.skip(x) + h


@pytest.mark.parametrize("mistake, match", [("no_emb", "embedding is missing"), ("no_skip", "skip connection"),
                                            ("late_emb", "after the second conv")])
def test_lesson05_res_block(capsys, mistake, match):
    run(checks.check_res_block, _L05ResBlock)
    run(checks.check_res_block, _L05ResBlock, in_ch=8, out_ch=8, emb_dim=12, groups=4, size=4)
    cls = type("Wrong", (_L05Block,), {"mistake": mistake})
    fails(capsys, checks.check_res_block, cls, match=match)


def test_lesson05_res_block_renamed_layers(capsys):
    class Renamed(torch.nn.Module):
        def __init__(self, in_ch, out_ch, emb_dim, groups):
            super().__init__()
            self.inner = _L05ResBlock(in_ch, out_ch, emb_dim, groups)

        def forward(self, x, emb):
            return self.inner(x, emb)

    fails(capsys, checks.check_res_block, Renamed, match="do not fit your block")


def test_lesson05_res_block_not_a_module_and_global_rng(capsys):
    """A class that builds something else is named; the check leaves the global random state alone."""
    class NotAModule:
        def __init__(self, *args):
            pass

    fails(capsys, checks.check_res_block, NotAModule, match="should be an nn.Module; got NotAModule")

    def broken(in_ch, out_ch, emb_dim, groups):
        raise NotImplementedError()

    fails(capsys, checks.check_res_block, broken, match="still raises NotImplementedError")
    state = torch.random.get_rng_state()
    run(checks.check_res_block, _L05ResBlock)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_lesson05_rearrange_pool(capsys):
    run(checks.check_rearrange_pool, lambda x: _l05_rearrange(x, 'b c (h p1) (w p2) -> b (c p1 p2) h w',
                                                              p1=2, p2=2))
    for pattern, match in [('b c (h p1) (w p2) -> b (p1 p2 c) h w', "ordered"),
                           ('b c (p1 h) (p2 w) -> b (c p1 p2) h w', "quarter-images"),
                           ('b c (h p1) (w p2) -> b (c p2 p1) h w', "swapped")]:
        fails(capsys, checks.check_rearrange_pool,
              lambda x, p=pattern: _l05_rearrange(x, p, p1=2, p2=2), match=match)
    fails(capsys, checks.check_rearrange_pool, lambda x: torch.nn.functional.max_pool2d(x, 2),
          match="ordinary pooling")


# ------------------------------------------------------------------ the three steps, apart
_GOOD_POOL = lambda x: _l05_rearrange(x, 'b c (h p1) (w p2) -> b (c p1 p2) h w', p1=2, p2=2)   # noqa: E731

# check, params, a right answer, a wrong one, the message the wrong one must get
SEPARATED = {
    "sinusoidal_embedding": (checks.check_sinusoidal_embedding, {"dim": 16, "seed": 3}, _l05_emb,
                             _l05_emb_variant(order="cos_sin"), "halves are swapped"),
    "sinusoidal_embedding_rejects_odd_dim": (checks.check_sinusoidal_embedding_rejects_odd_dim, {"dim": 9},
                                             _l05_emb, _l05_emb_variant(check_odd=False), "without complaint"),
    "sinusoidal_embedding_neighbours": (checks.check_sinusoidal_embedding_neighbours, {"dim": 16, "T": 200},
                                        _l05_emb, lambda t, dim: _l05_emb((t // 2) * 2, dim), "same embedding"),
    "add_time_embedding": (checks.check_add_time_embedding, {"shape": (4, 4, 4, 4), "seed": 2},
                           lambda h, emb: h + _l05_rearrange(emb, 'b c -> b c 1 1'), lambda h, emb: h + emb,
                           "wrong axes"),
    "res_block": (checks.check_res_block, {"in_ch": 8, "out_ch": 16, "emb_dim": 12, "groups": 4, "size": 4},
                  _L05ResBlock, type("NoSkip", (_L05Block,), {"mistake": "no_skip"}), "skip connection"),
    "rearrange_pool": (checks.check_rearrange_pool, {"shape": (2, 2, 4, 6)}, _GOOD_POOL,
                       lambda x: torch.nn.functional.max_pool2d(x, 2), "ordinary pooling"),
}


@pytest.mark.parametrize("name", sorted(SEPARATED))
def test_lesson05_steps_work_apart(capsys, name):
    check, params, right, wrong, match = SEPARATED[name]
    assert check is checks.get_check(f"check_{name}")
    separates(capsys, check, params, right, wrong, match, ticks=1)


@pytest.mark.parametrize("name", sorted(SEPARATED))
def test_lesson05_reference_passes_and_inputs_hold_no_answer(capsys, name):
    check = SEPARATED[name][0]
    assert check.reference is not None
    run(check, check.reference)
    assert "✓" in capsys.readouterr().out
    inputs = check.make()
    assert not any(k in inputs for k in ("ref", "expected", "want", "answer"))
