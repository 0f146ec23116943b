"""course_utils.checks, lesson 01 (U-Net recap): each check passes the right class, names each classic
mistake, writes only to stdout, returns None, and its three steps (make → run → judge) work apart, with
inputs and outputs carried through torch.save / torch.load(weights_only=True) as a grader carries them."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from course_utils import checks
from course_utils import models


def run(check, *args, **kwargs):
    """Run a check expected to pass; it must return None."""
    assert check(*args, **kwargs) is None


def fails(capsys, check, *args, match: str, **kwargs) -> str:
    """Run a check expected to fail with ``match`` in its message; returns what it printed."""
    with pytest.raises(AssertionError, match=match):
        check(*args, **kwargs)
    out = capsys.readouterr()
    assert out.err == "", "checks must never write to stderr"
    assert "✗" in out.out
    return out.out


# ------------------------------------------------------------------ lesson 01: U-Net blocks
def _l01_classes():
    from course_utils.models import Downsample, Upsample

    class Down(nn.Module):
        def __init__(self, i, o, groups=8):
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.GroupNorm(groups, o), nn.GELU())
            self.down = Downsample(o)

        def forward(self, x):
            return self.down(self.conv(x))

    class Up(nn.Module):
        def __init__(self, i, s, o, groups=8):
            super().__init__()
            self.up = Upsample(i)
            self.conv = nn.Sequential(nn.Conv2d(i + s, o, 3, padding=1), nn.GroupNorm(groups, o), nn.GELU())

        def forward(self, x, skip):
            return self.conv(torch.cat([self.up(x), skip], dim=1))

    return Down, Up


def unet(in_channels=1, channels=(16, 32)):
    return checks.reference_small_unet(in_channels, channels)


class UNetNoSkip(nn.Module):
    def __init__(self, in_channels=1, channels=(16, 32)):
        super().__init__()
        self.ref = checks.reference_small_unet(in_channels, channels)

    def forward(self, x):
        r = self.ref
        h0 = r.conv_in(x)
        h2 = r.down2(r.down1(h0))
        return r.conv_out(r.up2(r.up1.conv(torch.cat([r.up1.up(h2), torch.zeros_like(r.down1(h0))], 1)), h0))


def test_unet_blocks_right(capsys):
    Down, Up = _l01_classes()
    run(checks.check_down_block, Down)
    run(checks.check_down_block, Down, 1, 8, sizes=((3, 28, 28),))
    run(checks.check_up_block, Up)
    run(checks.check_small_unet, unet)
    run(checks.check_small_unet, unet, in_channels=3, channels=(8, 16), sizes=((2, 12, 20),))
    run(checks.check_count_parameters, lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad))
    out = capsys.readouterr()
    assert out.err == "" and "✗" not in out.out and "matches course_utils.models.DownBlock" in out.out


def test_unet_blocks_classic_mistakes(capsys):
    Down, Up = _l01_classes()

    class NoHalf(Down):
        def forward(self, x):
            return self.conv(x)

    class ActFirst(Down):
        def __init__(self, i, o, groups=8):
            super().__init__(i, o)
            self.conv = nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.GELU(), nn.GroupNorm(groups, o))

    class HardCoded(Down):
        def forward(self, x):
            return self.down(self.conv(x)).reshape(x.shape[0], -1, 8, 8)

    class NoSkip(Up):
        def forward(self, x, skip):
            return self.conv(torch.cat([self.up(x), 0 * skip], dim=1))

    class Swapped(Up):
        def forward(self, x, skip):
            return self.conv(torch.cat([skip, self.up(x)], dim=1))

    fails(capsys, checks.check_down_block, NoHalf, match="kept the resolution")
    fails(capsys, checks.check_down_block, ActFirst, match="GELU before GroupNorm")
    fails(capsys, checks.check_down_block, HardCoded, match="never from a fixed image size")
    fails(capsys, checks.check_up_block, NoSkip, match="no gradient reaches the skip")
    fails(capsys, checks.check_up_block, Swapped, 8, 8, 8, match=r"concatenated \[skip, h\]")

    fails(capsys, checks.check_small_unet, UNetNoSkip, match="gets no gradient|found 1 call")
    fails(capsys, checks.check_count_parameters, lambda m: len(list(m.parameters())), match="parameter tensors")
    fails(capsys, checks.check_count_parameters, lambda m: sum(p.numel() for p in m.parameters()),
          match="frozen")


# ------------------------------------------------------------------ more mistakes, named as before
def test_more_block_mistakes(capsys):
    Down, Up = _l01_classes()

    class Relu(Down):
        def __init__(self, i, o, groups=8):
            super().__init__(i, o)
            self.conv = nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.GroupNorm(groups, o), nn.ReLU())

    class BatchNormed(nn.Module):
        def __init__(self, i, o):
            super().__init__()
            self.c, self.n = nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o)

        def forward(self, x):
            return self.n(self.c(x))

    class Scaled(Down):                       # the package's layout, a different output: only numbers tell
        def forward(self, x):
            return 1.5 * super().forward(x)

    class NotANumber(nn.Module):
        def __init__(self, *a):
            raise NotImplementedError()

    fails(capsys, checks.check_down_block, Relu, match="that is ReLU")
    fails(capsys, checks.check_down_block, BatchNormed, match="no nn.GroupNorm.*BatchNorm depends on the batch")
    fails(capsys, checks.check_down_block, Scaled, match="with the reference's weights does not match the package")
    fails(capsys, checks.check_down_block, NotANumber, match="still raises NotImplementedError")
    fails(capsys, checks.check_down_block, lambda i, o: 3, match="should build a torch.nn.Module.*got int")
    fails(capsys, checks.check_up_block, lambda i, s, o: nn.Identity(), match="has no nn.Conv2d")

    class UNetRewired(nn.Module):              # the reference's layout, the last skip doubled
        def __init__(self, in_channels=1, channels=(16, 32)):
            super().__init__()
            for k, v in checks.reference_small_unet(in_channels, channels).named_children():
                setattr(self, k, v)

        def forward(self, x):
            h0 = self.conv_in(x)
            h1 = self.down1(h0)
            return self.conv_out(self.up2(self.up1(self.down2(h1), h1), 2 * h0))

    fails(capsys, checks.check_small_unet, UNetRewired, match="differs from the reference U-Net")
    fails(capsys, checks.check_count_parameters, lambda m: 1.0, match="should return a Python int; got float 1.0")


def test_renamed_layers_get_a_note_not_a_comparison(capsys):
    class Renamed(nn.Module):
        def __init__(self, i, o):
            super().__init__()
            self.c, self.n, self.p = nn.Conv2d(i, o, 3, padding=1), nn.GroupNorm(8, o), nn.MaxPool2d(2)

        def forward(self, x):
            return self.p(nn.functional.gelu(self.n(self.c(x))))

    run(checks.check_down_block, Renamed)
    out = capsys.readouterr().out
    assert "note: your block's parameters are named or shaped differently" in out and "✗" not in out


def test_positional_parameters_keep_the_old_signature():
    Down, _ = _l01_classes()
    with pytest.raises(TypeError, match="at most 2 positional"):
        checks.check_down_block(Down, 8, 16, 3)
    with pytest.raises(TypeError, match="two values for 'in_ch'"):
        checks.check_down_block(Down, 8, in_ch=8)
    with pytest.raises(ValueError, match=r"\(batch, height, width\) triples"):
        checks.check_down_block(Down, sizes=((16, 16),))
    with pytest.raises(ValueError, match="two ints"):
        checks.check_small_unet(unet, channels=(8, 16, 32))
    assert "DownBlock(in_ch, out_ch)" in checks.check_down_block.__doc__


def test_checks_run_seeded_like_before():
    """The learner's block is built under torch.manual_seed(seed) and the reference under seed + 1, so the
    global RNG ends where it ended before the checks were split (the notebook trains right after)."""
    Down, _ = _l01_classes()
    run(checks.check_down_block, Down, seed=3)
    after = torch.random.get_rng_state()
    torch.manual_seed(4)
    models.DownBlock(8, 16)
    assert torch.equal(after, torch.random.get_rng_state())


# ------------------------------------------------------------------ the three steps, apart
SEPARATED = {
    "down_block": ({}, lambda: _l01_classes()[0],
                   lambda: type("NoHalf", (_l01_classes()[0],), {"forward": lambda self, x: self.conv(x)}),
                   "kept the resolution"),
    "up_block": ({"in_ch": 8, "skip_ch": 8, "out_ch": 8}, lambda: _l01_classes()[1],
                 lambda: type("Swapped", (_l01_classes()[1],),
                              {"forward": lambda self, x, s: self.conv(torch.cat([s, self.up(x)], dim=1))}),
                 r"concatenated \[skip, h\]"),
    "small_unet": ({"sizes": ((2, 8, 8),)}, lambda: unet, lambda: UNetNoSkip, "gets no gradient|found 1 call"),
    "count_parameters": ({}, lambda: models.count_parameters,
                         lambda: (lambda m: sum(p.numel() for p in m.parameters())), "frozen"),
}


def _apart(check, params, subject, path):
    """make → run → torch.save → torch.load(weights_only=True) → judge, as a grader runs them."""
    inputs = check.make(**params)
    outputs = check.run(inputs, subject)
    torch.save({"inputs": inputs, "outputs": outputs}, path)
    loaded = torch.load(path, weights_only=True)
    return check.judge(loaded["inputs"], loaded["outputs"])


def test_every_lesson01_check_is_separated():
    assert {f"check_{n}" for n in SEPARATED} == {n for n in checks.lesson01.__all__ if n.startswith("check_")}


@pytest.mark.parametrize("name", sorted(SEPARATED))
def test_lesson01_steps_work_apart(capsys, tmp_path, name):
    params, right, wrong, match = SEPARATED[name]
    check = checks.get_check(f"check_{name}")
    assert check is getattr(checks, f"check_{name}")
    assert _apart(check, params, right(), tmp_path / "right.pt") is None
    out = capsys.readouterr()
    assert out.err == "" and "✓" in out.out and "✗" not in out.out
    with pytest.raises(checks.CheckFailed, match=match):
        _apart(check, params, wrong(), tmp_path / "wrong.pt")
    out = capsys.readouterr()
    assert out.err == "" and "✗" in out.out


@pytest.mark.parametrize("name", sorted(SEPARATED))
def test_lesson01_reference_passes_and_inputs_hold_no_answer(capsys, name):
    check = checks.get_check(f"check_{name}")
    assert check.reference is not None
    run(check, check.reference)
    assert "✓" in capsys.readouterr().out
    inputs = check.make()
    assert not any(k in inputs for k in ("ref", "expected", "want", "answer"))
