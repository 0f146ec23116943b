"""course_utils.checks, lesson 01 (U-Net recap): each check passes the right class, names each classic
mistake, writes only to stdout, returns None, and its three steps (make → run → judge) work apart, with
inputs and outputs carried through torch.save / torch.load(weights_only=True) as a grader carries them."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from course_utils import checks
from course_utils import models

from check_support import fails, run, separates


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


def test_the_learners_class_is_built_seeded_and_gets_the_packages_initial_weights(capsys):
    """Built under torch.manual_seed(seed); with the package's layout, its weights become those of the
    package's block built under torch.manual_seed(seed + 1), as before the checks were split."""
    Down, _ = _l01_classes()
    states = []

    class Seen(Down):
        def __init__(self, i, o):
            states.append(torch.random.get_rng_state())
            super().__init__(i, o)

    check = checks.check_down_block
    inputs = check.make(seed=3)
    check.run(inputs, Seen)
    torch.manual_seed(3)
    assert torch.equal(states[0], torch.random.get_rng_state())
    torch.manual_seed(4)
    ref = models.DownBlock(8, 16)
    assert all(torch.equal(v, ref.state_dict()[k]) for k, v in inputs["package_weights"].items())


def _learner_unet():
    Down, Up = _l01_classes()

    class SmallUNet(nn.Module):
        def __init__(self, in_channels=1, channels=(16, 32)):
            super().__init__()
            c1, c2 = channels
            self.conv_in = nn.Conv2d(in_channels, c1, 3, padding=1)
            self.down1, self.down2 = Down(c1, c1), Down(c1, c2)
            self.up1, self.up2 = Up(c2, c1, c1), Up(c1, c1, c1)
            self.conv_out = nn.Conv2d(c1, in_channels, 1)

        def forward(self, x):
            h0 = self.conv_in(x)
            h1 = self.down1(h0)
            return self.conv_out(self.up2(self.up1(self.down2(h1), h1), h0))

    return SmallUNet


@pytest.mark.parametrize("name, subject", [("down_block", lambda: _l01_classes()[0]),
                                           ("up_block", lambda: _l01_classes()[1]),
                                           ("small_unet", _learner_unet)])
def test_run_needs_none_of_the_packages_blocks(capsys, monkeypatch, name, subject):
    """A grader blocks the exercise's reference while the learner's code runs: run must not need it."""
    check = checks.get_check(f"check_{name}")
    inputs = check.make()

    def blocked(*a, **k):
        raise RuntimeError("the package's answer is blocked while your code is graded")

    with monkeypatch.context() as m:
        for attr in ("DownBlock", "UpBlock", "reference_small_unet"):
            m.setattr(checks.lesson01, attr, blocked)
        outputs = check.run(inputs, subject())
    check.judge(inputs, outputs)
    out = capsys.readouterr().out
    assert "with the package's weights copied in" in out or "with the reference's weights copied in" in out
    assert "✗" not in out


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
    "count_parameters": ({}, lambda: (lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)),
                         lambda: (lambda m: sum(p.numel() for p in m.parameters())), "frozen"),
}


def test_every_lesson01_check_is_separated():
    assert {f"check_{n}" for n in SEPARATED} == {n for n in checks.lesson01.__all__ if n.startswith("check_")}


@pytest.mark.parametrize("name", sorted(SEPARATED))
def test_lesson01_steps_work_apart(capsys, name):
    params, right, wrong, match = SEPARATED[name]
    check = checks.get_check(f"check_{name}")
    assert check is getattr(checks, f"check_{name}")
    # small_unet's right answer is the package's own reference, which the grader's block makes raise
    separates(capsys, check, params, right(), wrong(), match, block=name != "small_unet")


@pytest.mark.parametrize("name", sorted(SEPARATED))
def test_lesson01_reference_passes_and_inputs_hold_no_answer(capsys, name):
    check = checks.get_check(f"check_{name}")
    assert check.reference is not None
    run(check, check.reference)
    assert "✓" in capsys.readouterr().out
    inputs = check.make()
    assert not any(k in inputs for k in ("ref", "expected", "want", "answer"))
