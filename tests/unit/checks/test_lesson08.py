"""course_utils.checks, lesson 08 (CLIP and attention): each check passes the right function, names each
classic mistake, writes only to stdout, returns None, and its three steps (make → run → judge) work apart,
with the outputs carried through torch.save / torch.load(weights_only=True) as a grader carries them.

The right answers here are written out independently of the package (plain torch), so a bug shared by the
package and the check's reference would show as a ✗."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_utils import captions as C
from course_utils import checks
from course_utils.checks.lesson08 import StandInCLIP

from check_support import fails, run, separates


# ---------------------------------------------------------------------------------------------- contrastive loss
def _loss(mistake=None):
    def fn(a, b, s):
        if mistake != "no_norm":
            a, b = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
        scale = {"divide": 1 / math.exp(min(float(s), math.log(100))), "log": float(s),
                 "no_clamp": math.exp(float(s))}.get(mistake, math.exp(min(float(s), math.log(100))))
        logits = scale * a @ b.T
        n = logits.shape[0]
        targets = torch.zeros(n, dtype=torch.long) if mistake == "zeros" else torch.arange(n)

        def ce(z):        # cross-entropy written out: -log softmax at the target, averaged
            return -(z.log_softmax(dim=1)[torch.arange(n), targets]).mean()
        if mistake == "rows":
            return ce(logits)
        if mistake == "cols":
            return ce(logits.T)
        if mistake == "sum":
            return ce(logits) + ce(logits.T)
        if mistake == "per_pair":
            return -(logits.log_softmax(dim=1).diagonal())
        return (ce(logits) + ce(logits.T)) / 2
    return fn


def test_contrastive_loss_right(capsys):
    run(checks.check_contrastive_loss, _loss())
    run(checks.check_contrastive_loss, _loss(), logit_scale=5.5, seed=3)
    run(checks.check_contrastive_loss, _loss(), batch=2, dim=3, logit_scale=0.0)
    out = capsys.readouterr()
    assert out.err == "" and out.out.count("✓") == 3 and "✗" not in out.out


@pytest.mark.parametrize("mistake, kwargs, match", [
    ("rows", {}, "only the image → text direction"),
    ("cols", {}, "only the text → image direction"),
    ("no_norm", {}, "not L2-normalised"),
    ("divide", {}, "divided by exp"),
    ("log", {}, "multiplied by logit_scale itself"),
    ("zeros", {}, "not the diagonal"),
    ("sum", {}, "summed the two directions"),
    ("no_clamp", {"logit_scale": 5.5}, "not clamped"),
    ("per_pair", {}, "one number"),
])
def test_contrastive_loss_mistakes(capsys, mistake, kwargs, match):
    fails(capsys, checks.check_contrastive_loss, _loss(mistake), match=match, **kwargs)


def test_contrastive_loss_unclamped_passes_below_the_clip(capsys):
    """Below log 100 clamping changes nothing: a function that never clamps is right there."""
    run(checks.check_contrastive_loss, _loss("no_clamp"), logit_scale=2.0)
    assert "✓" in capsys.readouterr().out


def test_contrastive_loss_steps_apart(capsys):
    separates(capsys, checks.check_contrastive_loss, {"seed": 4}, _loss(), _loss("rows"), "image → text")


# ---------------------------------------------------------------------------------------------- zero-shot
def _zero_shot(mistake=None):
    def fn(model, images, names, templates):
        img = F.normalize(model.encode_image(images), dim=-1)
        use = templates[:1] if mistake == "first" else templates
        rows = []
        for n in names:
            prompts = [t.format(n) if mistake == "raw" else C.class_prompt(n, t) for t in use]
            e = F.normalize(model.encode_text(prompts), dim=-1).mean(0)
            rows.append(e if mistake == "no_renorm" else e / e.norm())
        scores = img @ torch.stack(rows).T
        if mistake == "wrong_axis":
            return scores.argmax(dim=0)
        if mistake == "float":
            return scores.argmax(dim=1).float()
        return scores.argmax(dim=1)
    return fn


def test_zero_shot_right(capsys):
    run(checks.check_zero_shot, _zero_shot())
    run(checks.check_zero_shot, _zero_shot(), batch=30, classes=["Sneaker", "Bag", "Ankle boot"], seed=4)
    run(checks.check_zero_shot, _zero_shot(), batch=1, seed=5)
    out = capsys.readouterr()
    assert out.err == "" and out.out.count("✓") == 3


@pytest.mark.parametrize("mistake, match", [
    ("first", "only the first template"),
    ("raw", "class_prompt"),
    ("no_renorm", "not renormalised"),
    ("wrong_axis", "argmax ran over the images"),
    ("float", "int64"),
])
def test_zero_shot_mistakes(capsys, mistake, match):
    fails(capsys, checks.check_zero_shot, _zero_shot(mistake), match=match)


def test_zero_shot_single_template_cannot_be_told_from_the_ensemble(capsys):
    """With one template, "first template only" is the right answer: the check must not call it a mistake."""
    run(checks.check_zero_shot, _zero_shot("first"), templates=("a photo of a {}",))


def test_stand_in_clip_spreads_the_predictions():
    """The check is only as strong as its stand-in: predictions must cover several classes, and each
    diagnosed mistake must change some of them (else the check could not tell it from the right answer)."""
    from course_utils.checks import lesson08 as L

    inputs = L.make_zero_shot()
    model = StandInCLIP(inputs["model_seed"])
    ref = _zero_shot()(model, inputs["images"], inputs["classes"], inputs["templates"])
    assert len(ref.unique()) >= 5
    for mistake in ("first", "raw", "no_renorm"):
        wrong = _zero_shot(mistake)(model, inputs["images"], inputs["classes"], inputs["templates"])
        assert not torch.equal(wrong, ref), mistake


def test_zero_shot_steps_apart(capsys):
    separates(capsys, checks.check_zero_shot, {"seed": 2}, _zero_shot(), _zero_shot("first"), "first template")


# ---------------------------------------------------------------------------------------------- attention
def _mha(mistake=None):
    def fn(q, k, v, heads, mask=None):
        B, N, D = q.shape
        d = D // heads
        H = 1 if mistake == "one_head" else heads
        dd = D // H

        def split(x):
            if mistake == "dh":
                return x.reshape(B, x.shape[1], dd, H).permute(0, 3, 1, 2)
            return x.reshape(B, x.shape[1], H, dd).permute(0, 2, 1, 3)              # (B, H, n, dd)
        qh, kh, vh = split(q), split(k), split(v)
        scale = {"no_scale": 1.0, "full_D": 1 / math.sqrt(D)}.get(mistake, 1 / math.sqrt(dd if mistake else d))
        s = qh @ kh.transpose(-1, -2) * scale
        if mask is not None and mistake != "no_mask":
            keep = ~mask if mistake == "inverted" else mask
            s = s.masked_fill(~keep[:, None, None, :], float("-inf"))
        w = s.softmax(dim=-2 if mistake == "axis" else -1).nan_to_num(0.0)
        out = w @ vh                                                                # (B, H, N, dd)
        if mistake == "not_merged":
            return out
        if mistake == "merge_dh":
            return out.permute(0, 2, 3, 1).reshape(B, N, D)
        return out.permute(0, 2, 1, 3).reshape(B, N, D)
    return fn


def test_attention_right(capsys):
    run(checks.check_multi_head_attention, _mha())
    run(checks.check_multi_head_attention, _mha(), heads=4, dim=16, masked=False, seed=1)
    run(checks.check_multi_head_attention, _mha(), heads=1, dim=8, seed=3)
    run(checks.check_multi_head_attention, lambda q, k, v, heads, mask=None: F.scaled_dot_product_attention(
        *(x.unflatten(-1, (heads, -1)).transpose(1, 2) for x in (q, k, v)),
        attn_mask=None if mask is None else mask[:, None, None, :]).transpose(1, 2).flatten(2))
    out = capsys.readouterr()
    assert out.err == "" and out.out.count("✓") == 4


@pytest.mark.parametrize("mistake, match", [
    ("axis", "softmax ran over the queries"),
    ("no_scale", r"not divided by √d"),
    ("full_D", r"√D"),
    ("dh", "heads were mixed up"),
    ("merge_dh", "merged another"),
    ("one_head", "one head only"),
    ("no_mask", "mask was ignored"),
    ("inverted", "mask was inverted"),
    ("not_merged", "not merged back"),
])
def test_attention_mistakes(capsys, mistake, match):
    fails(capsys, checks.check_multi_head_attention, _mha(mistake), match=match)


def test_attention_steps_apart(capsys):
    separates(capsys, checks.check_multi_head_attention, {"seed": 6}, _mha(), _mha("axis"), "queries")
