"""Checks for lesson 08 (CLIP and text-to-image): the contrastive loss, zero-shot classification with
prompt ensembling, multi-head attention.

Each check is three steps (see :mod:`course_utils.checks._harness`): ``make_<name>`` builds seeded inputs,
``run_<name>`` calls the learner's function on them (building the stand-in CLIP where one is needed),
``judge_<name>`` compares with :mod:`course_utils.clip` / :mod:`course_utils.attention` and names the
classic mistake; ``check_<name>`` runs all three. :func:`tiny_clip` is the stand-in model.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import captions as C
from ..attention import merge_heads, scaled_dot_product_attention, split_heads
from ..clip import MAX_LOGIT_SCALE, clip_loss
from ..data import FASHION_MNIST_CLASSES
from . import _harness as h

__all__ = ["check_contrastive_loss", "check_zero_shot", "check_multi_head_attention", "tiny_clip", "StandInCLIP",
           "reference_contrastive_loss", "reference_zero_shot", "reference_multi_head_attention"]


class StandInCLIP:
    """A seeded stand-in for a trained CLIP in the checks: only ``encode_image`` and ``encode_text``.

    Images: a fixed random projection of the centred pixels; texts: the sum of a fixed random vector per
    token of :func:`course_utils.captions.tokenize` (``<pad>`` excluded) through a fixed random tanh layer. Both are L2-normalised, as a CLIP's
    are. Nothing is trained, yet each prompt and each image gets its own direction, and different templates
    give very different text embeddings, so every step of prompt ensembling shows in the predictions.
    """

    def __init__(self, seed: int = 0, dim: int = 16):
        g = h.gen(seed)
        self.image_projection = torch.randn(256, dim, generator=g)
        self.word_vectors = torch.randn(len(C.VOCAB), dim, generator=g)
        self.word_vectors[C.WORD_TO_ID[C.PAD]] = 0.0
        self.mixer = torch.randn(dim, dim, generator=g) * 1.5

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, 16, 16) → (B, dim), unit norm."""
        x = images.reshape(images.shape[0], -1).float()
        return F.normalize((x - x.mean(dim=1, keepdim=True)) @ self.image_projection, dim=-1)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """B prompts → (B, dim), unit norm."""
        bag = self.word_vectors[C.tokenize(texts)].sum(dim=1)                       # (B, dim)
        return F.normalize(torch.tanh(bag @ self.mixer), dim=-1)     # a nonlinearity: templates and words interact


def tiny_clip(seed: int = 0) -> StandInCLIP:
    """The checks' stand-in model (:class:`StandInCLIP`), seeded."""
    return StandInCLIP(seed)


# ----------------------------------------------------------------------------------------------
# Exercise: the symmetric contrastive (InfoNCE) loss  (Radford et al. 2021, Figure 3)
# ----------------------------------------------------------------------------------------------
def reference_contrastive_loss(image_features, text_features, logit_scale):
    """The exercise's answer: normalise both, then :func:`course_utils.clip.clip_loss`."""
    return clip_loss(F.normalize(image_features, dim=-1), F.normalize(text_features, dim=-1), logit_scale)


def make_contrastive_loss(batch: int = 8, dim: int = 16, logit_scale: float = math.log(1 / 0.07),
                          seed: int = 0) -> dict:
    """Matched pairs share part of their direction (so the diagonal matters), and the rows have very
    different lengths (so forgetting the L2 normalisation shows)."""
    g = h.gen(seed)
    shared = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    img = (shared + 0.7 * torch.randn(batch, dim, generator=g, dtype=torch.float64)) * \
        torch.linspace(0.3, 3.0, batch, dtype=torch.float64).unsqueeze(1)
    txt = (shared + 0.7 * torch.randn(batch, dim, generator=g, dtype=torch.float64)) * \
        torch.linspace(2.5, 0.4, batch, dtype=torch.float64).unsqueeze(1)
    return {"image_features": img, "text_features": txt, "logit_scale": float(logit_scale)}


def run_contrastive_loss(inputs: dict, fn) -> dict:
    a, b, s = inputs["image_features"], inputs["text_features"], inputs["logit_scale"]
    out = h.call(fn, a.clone(), b.clone(), torch.tensor(s, dtype=torch.float64))
    swapped = h.call(fn, b.clone(), a.clone(), torch.tensor(s, dtype=torch.float64))
    return {"out": out, "swapped": swapped}


def judge_contrastive_loss(inputs: dict, outputs: dict) -> None:
    r = h.Report("contrastive_loss")
    a, b, s = inputs["image_features"], inputs["text_features"], inputs["logit_scale"]
    B, D = a.shape
    shown = f"contrastive_loss(image_features ({B}, {D}), text_features ({B}, {D}), logit_scale={s:.4g})"
    out = h.as_tensor(r, h.value(r, outputs["out"]), shown)
    if out.numel() != 1:
        r.fail(f"{shown} should be one number (a 0-d tensor), the mean of the two cross-entropies; got shape "
               f"{tuple(out.shape)}. Did you return the per-pair losses? Average them (F.cross_entropy does).")
    out = out.reshape(())
    ref = reference_contrastive_loss(a, b, s)
    an, bn = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    labels = torch.arange(B)
    scale = math.exp(min(s, MAX_LOGIT_SCALE))

    def ce(logits, lab=labels):
        return F.cross_entropy(logits, lab)

    logits = scale * an @ bn.T
    raw = scale * a @ b.T
    mistakes = {
        "you average only the image → text direction (each image picks its caption). CLIP's loss is "
        "symmetric: add the text → image direction, the cross-entropy of the transposed logits, and take "
        "the mean of the two.": ce(logits),
        "you average only the text → image direction (the transposed logits). Add the image → text "
        "direction and take the mean of the two.": ce(logits.T),
        "the features were not L2-normalised: CLIP compares directions (cosine similarity), so divide each "
        "row by its length first (F.normalize(x, dim=-1)).": (ce(raw) + ce(raw.T)) / 2,
        "the logits were divided by exp(logit_scale): logit_scale is the log of a multiplier (1/τ), so "
        "multiply the cosine similarities by logit_scale.exp().":
            (ce(an @ bn.T / scale) + ce((an @ bn.T / scale).T)) / 2,
        "the similarities were multiplied by logit_scale itself: it is the *log* of the multiplier (learned "
        "in log space so it stays positive); use logit_scale.exp().":
            (ce(s * an @ bn.T) + ce((s * an @ bn.T).T)) / 2,
        "the targets are not the diagonal: image i belongs with caption i, so the labels are "
        "torch.arange(B), not zeros.":
            (ce(logits, torch.zeros(B, dtype=torch.long)) + ce(logits.T, torch.zeros(B, dtype=torch.long))) / 2,
        "you summed the two directions; CLIP takes their mean ((loss_i + loss_t) / 2).": ce(logits) + ce(logits.T),
    }
    if s > MAX_LOGIT_SCALE:
        big = math.exp(s) * an @ bn.T
        mistakes = {f"logit_scale = {s:g} is above log(100) = {MAX_LOGIT_SCALE:.4f} and was not clamped: CLIP "
                    f"clips the multiplier at 100 (logit_scale.clamp(max=math.log(100)).exp()) so training "
                    f"cannot blow up.": (ce(big) + ce(big.T)) / 2, **mistakes}
    h.diagnose(r, out, ref, mistakes, rtol=1e-4, atol=1e-6, what=shown)
    swapped = h.value(r, outputs["swapped"])
    if not (isinstance(swapped, torch.Tensor) and swapped.numel() == 1
            and h.close(swapped.reshape(()), ref, 1e-4, 1e-6)):
        r.fail("swapping the image and text features changed the loss: the symmetric loss treats both towers "
               "alike (mean of the row and column cross-entropies).")
    r.ok(f"{shown} = {float(out):.5f}, the symmetric InfoNCE of Radford et al. (normalised, scaled by "
         f"exp(logit_scale) ≤ 100, diagonal targets, both directions averaged)")


check_contrastive_loss = h.register(h.Check(
    "contrastive_loss", make_contrastive_loss, run_contrastive_loss, judge_contrastive_loss,
    reference=reference_contrastive_loss, blocks=("course_utils.clip.clip_loss",),
    doc="Check ``fn(image_features, text_features, logit_scale)``: CLIP's symmetric InfoNCE loss.\n\n"
        "The features are unnormalised rows of matched pairs; the answer must normalise them, multiply the "
        "cosine similarities by ``exp(logit_scale)`` (clamped at 100), use the diagonal as targets and "
        "average the image→text and text→image cross-entropies (the same when the towers are swapped)."))


# ----------------------------------------------------------------------------------------------
# Exercise: zero-shot classification with prompt ensembling  (Radford et al. 2021, §3.1.4)
# ----------------------------------------------------------------------------------------------
def reference_zero_shot(model, images, class_names, templates):
    """The exercise's answer, as :func:`course_utils.clip.zero_shot_classify` computes it."""
    from ..clip import zero_shot_classify
    return zero_shot_classify(model, images, list(class_names), list(templates))


def _class_embeddings(model, class_names, templates, prompt, normalise_each=True, renormalise=True):
    out = []
    for name in class_names:
        e = model.encode_text([prompt(name, t) for t in templates])
        e = F.normalize(e, dim=-1) if normalise_each else e
        m = e.mean(dim=0)
        out.append(F.normalize(m, dim=-1) if renormalise else m)
    return torch.stack(out)


def make_zero_shot(batch: int = 48, model_seed: int = 0, templates=("a photo of a {}", "a picture of a {}", "a {}"),
                   classes=None, seed: int = 0) -> dict:
    classes = list(FASHION_MNIST_CLASSES) if classes is None else list(classes)
    return {"images": h.images((batch, 1, 16, 16), seed), "model_seed": model_seed, "classes": classes,
            "templates": list(templates)}


def run_zero_shot(inputs: dict, fn) -> dict:
    with h.one_thread():
        model = tiny_clip(inputs["model_seed"])
        out = h.call(fn, model, inputs["images"].clone(), list(inputs["classes"]), list(inputs["templates"]))
    return {"out": out}


def judge_zero_shot(inputs: dict, outputs: dict) -> None:
    r = h.Report("zero_shot")
    images, classes, templates = inputs["images"], inputs["classes"], inputs["templates"]
    B, K = images.shape[0], len(classes)
    shown = f"zero_shot(model, images ({B}, 1, 16, 16), {K} class names, {len(templates)} templates)"
    out = h.as_tensor(r, h.value(r, outputs["out"]), shown)
    if tuple(out.shape) == (K,) and K != B:
        r.fail(f"{shown} has shape ({K},), one entry per class: the argmax ran over the images. Take it over the "
               f"classes, (image_emb @ class_emb.T).argmax(dim=1), one prediction per image.")
    h.check_shape_dtype(r, out, (B,), None, shown)
    if out.is_floating_point() or out.dtype == torch.bool:
        r.fail(f"{shown} has dtype {out.dtype}; return class indices (int64), e.g. scores.argmax(dim=1).")
    out = out.long()
    with h.one_thread(), torch.no_grad():
        model = tiny_clip(inputs["model_seed"])
        img = F.normalize(model.encode_image(images), dim=-1)

        def preds(cls_emb):
            return (img @ cls_emb.T).argmax(dim=1)

        ref_emb = _class_embeddings(model, classes, templates, C.class_prompt)
        scores = img @ ref_emb.T
        ref = scores.argmax(dim=1)
        top2 = scores.topk(min(2, K), dim=1).values
        near_tie = (top2[:, 0] - top2[:, -1]) < 1e-4 if K > 1 else torch.zeros(B, dtype=torch.bool)
        bad = (out != ref) & ~near_tie
        if not bool(bad.any()):
            acc_same = int((out == ref).sum())
            r.ok(f"{shown}: all {acc_same} predictions match course_utils.clip.zero_shot_classify (one "
                 f"embedding per class: the templates' normalised embeddings averaged and renormalised)")
            return
        mistakes = {
            "only the first template was used: prompt ensembling averages the class's embedding over every "
            "template (each normalised), then renormalises the mean.":
                preds(_class_embeddings(model, classes, templates[:1], C.class_prompt)),
            "the class names went into the templates as they are (template.format(name)): 'T-shirt/top' then "
            "becomes unknown words. Build each prompt with course_utils.captions.class_prompt(name, template), "
            "which maps the data set's names to the caption words and fixes 'a'/'an'.":
                preds(_class_embeddings(model, classes, templates, lambda n, t: t.format(n))),
            "the averaged class embedding was not renormalised: the mean of unit vectors is shorter than 1 "
            "by a different amount for each class, which biases the cosine similarity. F.normalize the "
            "mean.": preds(_class_embeddings(model, classes, templates, C.class_prompt, renormalise=False)),
            "the last template only was used: average over all of them.":
                preds(_class_embeddings(model, classes, templates[-1:], C.class_prompt)),
        }
        n_bad = int(bad.sum())
        for msg, cand in mistakes.items():
            if bool(((out == cand) | near_tie).all()) and not torch.equal(cand, ref):
                r.fail(msg)
        per_template = torch.stack([preds(_class_embeddings(model, classes, [t], C.class_prompt)) for t in templates])
        if bool((per_template == out).all(dim=1).any()) and len(templates) > 1:
            r.fail("the predictions are those of a single template: average the normalised embeddings of every "
                   "template for each class (prompt ensembling), then renormalise.")
    r.fail(f"{n_bad} of {B} predictions differ from the package's (first at image {int(bad.nonzero()[0])}: yours "
           f"{int(out[bad][0])}, expected {int(ref[bad][0])}). For each class: encode every template's prompt, "
           f"normalise, average, renormalise; then take the argmax of the cosine similarity per image.")


check_zero_shot = h.register(h.Check(
    "zero_shot", make_zero_shot, run_zero_shot, judge_zero_shot, reference=reference_zero_shot,
    blocks=("course_utils.clip.zero_shot_classify",),
    doc="Check ``fn(model, images, class_names, templates)``: zero-shot predictions with prompt ensembling.\n\n"
        "The model is a seeded stand-in (:class:`StandInCLIP`); the predictions must equal "
        ":func:`course_utils.clip.zero_shot_classify`'s (prompts from ``class_prompt``, each class's template "
        "embeddings normalised, averaged and renormalised; argmax over the classes), ties aside."))


# ----------------------------------------------------------------------------------------------
# Exercise: multi-head scaled dot-product attention with einops  (Vaswani et al. 2017, eq. 1)
# ----------------------------------------------------------------------------------------------
def reference_multi_head_attention(q, k, v, heads, mask=None):
    """The exercise's answer: split heads, softmax(q kᵀ / √d) v over the keys, merge heads."""
    m = None if mask is None else mask[:, None, None, :]
    return merge_heads(scaled_dot_product_attention(split_heads(q, heads), split_heads(k, heads),
                                                    split_heads(v, heads), m))


def make_multi_head_attention(batch: int = 2, queries: int = 6, keys: int = 5, dim: int = 8, heads: int = 2,
                              masked: bool = True, seed: int = 0) -> dict:
    g = h.gen(seed)
    q = torch.randn(batch, queries, dim, generator=g, dtype=torch.float64) * 1.5
    k = torch.randn(batch, keys, dim, generator=g, dtype=torch.float64) * 1.5
    v = torch.randn(batch, keys, dim, generator=g, dtype=torch.float64)
    mask = None
    if masked:
        mask = torch.ones(batch, keys, dtype=torch.bool)
        for b in range(batch):                     # padding at the end, as a tokenised prompt has it
            mask[b, max(1, keys - 1 - b):] = False
    return {"q": q, "k": k, "v": v, "heads": heads, "mask": mask}


def run_multi_head_attention(inputs: dict, fn) -> dict:
    args = (inputs["q"].clone(), inputs["k"].clone(), inputs["v"].clone(), inputs["heads"])
    m = inputs["mask"]
    return {"out": h.call(fn, *args, mask=None if m is None else m.clone())}


def judge_multi_head_attention(inputs: dict, outputs: dict) -> None:
    r = h.Report("multi_head_attention")
    q, k, v, H, mask = inputs["q"], inputs["k"], inputs["v"], inputs["heads"], inputs["mask"]
    B, N, D = q.shape
    M = k.shape[1]
    shown = (f"multi_head_attention(q {h.fmt_shape(q.shape)}, k {h.fmt_shape(k.shape)}, v, heads={H}, "
             f"mask={'None' if mask is None else h.fmt_shape(mask.shape)})")
    out = h.as_tensor(r, h.value(r, outputs["out"]), shown)
    if tuple(out.shape) == (B, H, N, D // H):
        r.fail(f"{shown} has shape {tuple(out.shape)}: the heads were not merged back. "
               f"rearrange(out, 'b h n d -> b n (h d)') gives (B, N, D).")
    h.check_shape_dtype(r, out, (B, N, D), None, shown)
    ref = reference_multi_head_attention(q, k, v, H, mask)
    d = D // H
    m4 = None if mask is None else mask[:, None, None, :]

    def attend(qh, kh, vh, scale, axis=-1, use_mask=m4):
        s = torch.einsum('bhnd,bhmd->bhnm', qh, kh) * scale
        if use_mask is not None:
            s = s.masked_fill(~use_mask, float("-inf"))
        return torch.einsum('bhnm,bhmd->bhnd', s.softmax(dim=axis).nan_to_num(0.0), vh)

    def split_dh(x):
        return x.reshape(x.shape[0], x.shape[1], d, H).permute(0, 3, 1, 2)     # 'b n (d h) -> b h n d'

    qh, kh, vh = split_heads(q, H), split_heads(k, H), split_heads(v, H)
    mistakes = {
        "the softmax ran over the queries axis: each query's weights over the keys must sum to 1, so take "
        "softmax(dim=-1) of the (B, heads, N, M) scores (M = the keys).":
            merge_heads(attend(qh, kh, vh, 1 / math.sqrt(d), axis=-2)),
        "the scores were not divided by √d: softmax(q kᵀ / √d) keeps the logits' spread independent of the "
        "head width (Vaswani et al., eq. 1).": merge_heads(attend(qh, kh, vh, 1.0)),
        f"the scores were divided by √D = √{D} (the full width); each head scales by the square root of its "
        f"own width d = D / heads = {d}.": merge_heads(attend(qh, kh, vh, 1 / math.sqrt(D))),
        "the heads were mixed up: 'b n (d h) -> b h n d' puts every head's channels in every head. Each head "
        "owns a contiguous block of D / heads channels: 'b n (h d) -> b h n d'.":
            merge_heads(attend(split_dh(q), split_dh(k), split_dh(v), 1 / math.sqrt(d)))
            if H > 1 else None,
        "the heads were split one way and merged another ('b h n d -> b n (d h)'); merge with the pattern that "
        "inverts the split, 'b h n d -> b n (h d)'.":
            attend(qh, kh, vh, 1 / math.sqrt(d)).permute(0, 2, 3, 1).reshape(B, N, D) if H > 1 else None,
        "one head only: with heads > 1 split D into heads blocks and attend in each separately.":
            merge_heads(attend(split_heads(q, 1), split_heads(k, 1), split_heads(v, 1), 1 / math.sqrt(D)))
            if H > 1 else None,
    }
    if mask is not None:
        mistakes = {
            "the mask was ignored: padded keys (mask False) must get weight 0, i.e. score −inf before the "
            "softmax (scores.masked_fill(~mask, float('-inf')) with the mask as (B, 1, 1, M)).":
                merge_heads(attend(qh, kh, vh, 1 / math.sqrt(d), use_mask=None)),
            "the mask was inverted: True means 'attend to this key' (a real token), False a <pad>; fill the "
            "scores where the mask is False.":
                merge_heads(attend(qh, kh, vh, 1 / math.sqrt(d), use_mask=~m4)) if bool((~mask).any(dim=1).all())
                else None,
            **mistakes}
    h.diagnose(r, out, ref, mistakes, rtol=1e-5, atol=1e-7, what=shown)
    r.ok(f"{shown} matches softmax(q kᵀ / √{d}) v per head, over the keys, padded keys masked")


check_multi_head_attention = h.register(h.Check(
    "multi_head_attention", make_multi_head_attention, run_multi_head_attention, judge_multi_head_attention,
    reference=reference_multi_head_attention,
    blocks=("course_utils.attention.scaled_dot_product_attention", "course_utils.attention.attention_weights"),
    doc="Check ``fn(q, k, v, heads, mask=None)``: multi-head scaled dot-product attention.\n\n"
        "q (B, N, D), k and v (B, M, D), mask (B, M) bool with True = a real key; the answer splits D into "
        "``heads`` contiguous blocks, takes softmax(q kᵀ / √(D/heads)) over the keys with masked keys at −inf, "
        "and merges the heads back to (B, N, D)."))
