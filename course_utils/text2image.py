"""Text-to-image at 16 px: a U-Net conditioned on the frozen tiny CLIP's text features (lesson 08).

* :class:`TextCondition` — what the U-Net reads from a prompt: the text encoder's per-token features and
  their padding mask (for **cross-attention**, as in latent diffusion, Rombach et al. 2022) and the pooled
  CLIP embedding (added to the time embedding: the simplest way to condition on text, one vector per prompt).
  :func:`encode_prompts` makes one from prompts; the empty prompt ``""`` is classifier-free guidance's
  null condition ∅ (Ho & Salimans 2021), so "no prompt" needs no special label.
* :class:`TextUNet` — :class:`course_utils.models.UNet` with self-attention and then cross-attention to the
  prompt's tokens at the lowest resolution, and the pooled embedding projected into the time embedding.
* :func:`make_text_loss` — L_simple with captions from :func:`course_utils.captions.make_captions`; a
  share ``p_uncond`` of the prompts is replaced by ``""`` and a share ``p_image`` of the conditions by the
  image's own CLIP image embedding (with empty tokens), so the model also makes *variations of an image*
  (the unCLIP idea, Ramesh et al. 2022) — see :func:`image_condition`.
* :func:`generate` — DDIM with classifier-free guidance from the shipped ``text16`` checkpoint;
  :func:`load_text2image`, :func:`build_text16` and :func:`evaluate_text2image` ship and measure it.

Conventions (see STYLE.md): images are (B, 1, 16, 16) in [-1, 1]; 0-indexed timesteps; every stochastic
function takes ``generator`` or ``seed``; misuse raises a ``ValueError`` that names the argument and the fix.
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch
from torch import nn

from . import captions as C
from .attention import SpatialCrossAttention
from .diffusion import GaussianDiffusion, classifier_free_guidance
from .models import UNet, UNetConfig
from .validation import check_generator, is_int, is_number

__all__ = ["TextCondition", "encode_prompts", "image_condition", "TextUNetConfig", "TextUNet",
           "draw_training_conditions", "make_text_loss",
           "guided_text_model", "sample", "generate", "load_text2image", "build_text16", "finish_text16",
           "text16_first_step", "evaluate_text2image", "typical_prompts",
           "TEXT16", "TEXT16_RECIPE", "LESSON_W"]

TEXT16 = "text16"
LESSON_W = 2.0          # the guidance weight lesson 08 uses (and generate's default, as the contract says)


class TextCondition(NamedTuple):
    """A batch of prompts as the U-Net reads them.

    Attributes:
        tokens: (B, M, context_dim) per-token features of the frozen text encoder.
        mask: (B, M) bool, True = a real token (``<pad>`` keys are masked out of cross-attention).
        embedding: (B, embed_dim) unit-norm CLIP embedding of the prompt (or of an image, see
            :func:`image_condition`).
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    embedding: torch.Tensor

    def cat(self, other: "TextCondition") -> "TextCondition":
        """Both batches in one (the conditional and the null half of a guided step)."""
        return TextCondition(*(torch.cat([a, b]) for a, b in zip(self, other)))

    def repeat(self, n: int) -> "TextCondition":
        """Each row repeated ``n`` times, in place order (row i → rows i·n … i·n + n − 1)."""
        return TextCondition(*(v.repeat_interleave(n, dim=0) for v in self))

    def to(self, device) -> "TextCondition":
        return TextCondition(*(v.to(device) for v in self))


def _check_prompts(prompts, max_len: int) -> list[str]:
    if isinstance(prompts, str):
        raise ValueError(f"prompts must be a list of strings; got a single str. Wrap one prompt as [{prompts!r}].")
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise ValueError(f"prompts must be a non-empty list of strings, e.g. ['a photo of a sneaker']; got "
                         f"{prompts!r}.")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise ValueError(f"prompts[{i}] must be a str; got {type(p).__name__} ({p!r}).")
    C.tokenize(list(prompts), max_len)          # raises on over-long prompts, naming the prompt and the limit
    return list(prompts)


@torch.no_grad()
def encode_prompts(clip, prompts: list[str]) -> TextCondition:
    """Prompts → :class:`TextCondition` through the frozen CLIP's text tower (``""`` = the null prompt ∅)."""
    return TextCondition(*clip.text_features(_check_prompts(prompts, clip.config.max_len)))


@torch.no_grad()
def image_condition(clip, images: torch.Tensor) -> TextCondition:
    """Condition on images instead of words: empty-prompt tokens and each image's CLIP *image* embedding.

    A model trained with ``p_image > 0`` (as ``text16`` is) then draws variations of each image.
    images: (B, 1, 16, 16) in [-1, 1].
    """
    emb = clip.encode_image(images)
    tokens, mask, _ = clip.text_features([""] * images.shape[0])
    return TextCondition(tokens, mask, emb)


@dataclass
class TextUNetConfig:
    """:class:`TextUNet`'s hyper-parameters: a :class:`UNetConfig` and how the text comes in."""

    unet: UNetConfig = field(default_factory=lambda: UNetConfig(channels=(32, 64), attention=True))
    context_dim: int = 64                 # the text encoder's width (CLIPConfig.width)
    embed_dim: int = 64                   # CLIP's shared space (CLIPConfig.embed_dim)
    cross_attention: bool = True          # tokens → cross-attention at the lowest resolution
    pooled: bool = True                   # the pooled embedding → added to the time embedding
    heads: int = 4

    def __post_init__(self) -> None:
        if isinstance(self.unet, dict):
            self.unet = UNetConfig.from_dict(self.unet)
        if not isinstance(self.unet, UNetConfig) or self.unet.num_classes is not None or not self.unet.time_embedding:
            raise ValueError("TextUNetConfig.unet must be a UNetConfig with num_classes=None (text replaces the "
                             "labels) and time_embedding=True.")
        for name in ("context_dim", "embed_dim", "heads"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise ValueError(f"TextUNetConfig.{name} must be a positive int; got {getattr(self, name)!r}.")
        if not (self.cross_attention or self.pooled):
            raise ValueError("TextUNetConfig: at least one of cross_attention and pooled must be True, or the "
                             "model never sees the prompt.")

    def to_dict(self) -> dict:
        return {**asdict(self), "unet": self.unet.to_dict()}


class TextUNet(UNet):
    """ε_θ(x_t, t, text): the course U-Net with cross-attention to the prompt and its pooled embedding.

    At the lowest resolution: ResBlock → self-attention → **cross-attention** (queries: the H·W positions;
    keys and values: the prompt's tokens) → ResBlock. The pooled CLIP embedding goes through a Linear layer
    into the time embedding, which every ResBlock reads.

    Shapes:
        x (B, 1, H, W), t (B,) int64 0-indexed, cond a :class:`TextCondition` of batch B → (B, 1, H, W).
    """

    def __init__(self, config: TextUNetConfig | dict | None = None):
        cfg = TextUNetConfig() if config is None else (TextUNetConfig(**config) if isinstance(config, dict) else config)
        if not isinstance(cfg, TextUNetConfig):
            raise ValueError(f"config must be a TextUNetConfig or its to_dict(); got {type(cfg).__name__}.")
        super().__init__(cfg.unet)
        self.text_config = cfg
        self.text_proj = nn.Linear(cfg.embed_dim, self.time_emb_dim) if cfg.pooled else None
        self.cross_attn = (SpatialCrossAttention(cfg.unet.channels[-1], cfg.context_dim, cfg.heads,
                                                 cfg.unet.norm_groups) if cfg.cross_attention else None)

    def _check_cond(self, cond, x: torch.Tensor) -> TextCondition:
        if not isinstance(cond, TextCondition):
            raise ValueError(f"cond must be a TextCondition (from text2image.encode_prompts(clip, prompts)); got "
                             f"{type(cond).__name__}.")
        B, c = x.shape[0], self.text_config
        want = {"tokens": (B, None, c.context_dim), "mask": (B, None), "embedding": (B, c.embed_dim)}
        for name, shape in want.items():
            v = getattr(cond, name)
            if v.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, v.shape)):
                raise ValueError(f"cond.{name} must have shape {tuple('M' if s is None else s for s in shape)} for a "
                                 f"batch of {B} images; got {tuple(v.shape)}.")
        return cond

    def forward(self, x: torch.Tensor, t, cond: TextCondition | None = None) -> torch.Tensor:  # type: ignore[override]
        """x: (B, 1, H, W) x_t; t: (B,) int64; cond: a TextCondition of batch B → (B, 1, H, W) predicted ε."""
        self._check_x(x)
        if cond is None:
            raise ValueError("TextUNet needs a condition: cond = encode_prompts(clip, prompts) (the empty prompt "
                             "'' is the null condition).")
        cond = self._check_cond(cond, x)
        emb = self.time_mlp(self.time_embed(self._check_t(t, x)).to(x.dtype))     # (B, E)
        if self.text_proj is not None:
            emb = emb + self.text_proj(cond.embedding.to(x.dtype))
        return self._denoise(x, emb, context=cond.tokens.to(x.dtype), mask=cond.mask)

    def _middle(self, h, emb, context=None, mask=None):
        h = self.mid_attn(self.mid_res1(h, emb))
        if self.cross_attn is not None:
            h = self.cross_attn(h, context, mask)
        return self.mid_res2(h, emb)


def _check_rates(p_uncond, p_image) -> None:
    for name, p in (("p_uncond", p_uncond), ("p_image", p_image)):
        if not is_number(p) or not 0.0 <= p < 1.0:
            raise ValueError(f"{name} must be a float in [0, 1); got {p!r}.")


def draw_training_conditions(images: torch.Tensor, labels: torch.Tensor, p_uncond: float, p_image: float,
                             generator: torch.Generator, max_len: int = 12) -> tuple[list[str], torch.Tensor]:
    """What each training image is conditioned on: a fresh caption, the empty prompt, or its own image embedding.

    For each image (in order, from the CPU ``generator``): a :func:`~course_utils.captions.make_captions`
    caption, then one uniform draw u: ``u < p_uncond`` → the prompt becomes ``""`` (the null condition that
    guidance needs); else, with probability ``p_image``, the image's CLIP image embedding replaces the
    caption's (``use_image`` True).

    Returns:
        (B texts, (B,) bool use_image); an image with use_image True keeps its caption in ``texts``, unused.
    """
    _check_rates(p_uncond, p_image)
    texts = C.make_captions(images, labels, generator=generator, max_len=max_len)
    u = torch.rand(len(texts), generator=generator)
    texts = ["" if u[i] < p_uncond else s for i, s in enumerate(texts)]
    use_image = (u >= p_uncond) & (u < p_uncond + p_image * (1 - p_uncond))
    return texts, use_image


def make_text_loss(clip, p_uncond: float = 0.1, p_image: float = 0.1, seed: int = 0):
    """A ``loss_fn`` for :func:`course_utils.train.train`: L_simple of a :class:`TextUNet` on captioned images.

    ``train`` passes each batch's labels; :func:`draw_training_conditions` (from a CPU generator seeded with
    ``seed``) picks each image's condition, which the frozen ``clip`` encodes.
    """
    _check_rates(p_uncond, p_image)
    gen = torch.Generator().manual_seed(seed)

    def loss_fn(model, diffusion: GaussianDiffusion, x0: torch.Tensor, y, generator) -> torch.Tensor:
        if y is None:
            raise ValueError("make_text_loss needs the labels of each batch: train a model with labels "
                             "(train() passes them to loss_fn).")
        x_cpu = x0.detach().float().cpu()
        texts, use_image = draw_training_conditions(x_cpu, y.cpu(), p_uncond, p_image, gen, clip.config.max_len)
        cond = encode_prompts(clip, texts)
        if bool(use_image.any()):
            img = image_condition(clip, x_cpu[use_image].clamp(-1, 1))
            tokens, mask, emb = (v.clone() for v in cond)
            tokens[use_image], mask[use_image], emb[use_image] = img.tokens, img.mask, img.embedding
            cond = TextCondition(tokens, mask, emb)
        return diffusion.loss_simple(model, x0, y=cond.to(x0.device), generator=generator)

    return loss_fn


class _Guided(nn.Module):
    """model(x, t) → the guided ε̂ for fixed conditions: one batched pass for the condition and ∅."""

    def __init__(self, model: TextUNet, cond: TextCondition, null: TextCondition, w: float):
        super().__init__()
        self.model, self.cond, self.null, self.w = model, cond, null, w
        self.both = cond.cat(null)

    def forward(self, x, t):
        if self.w == 0.0:
            return self.model(x, t, self.cond)
        eps_cond, eps_null = self.model(torch.cat([x, x]), torch.cat([t, t]), self.both).chunk(2)
        return classifier_free_guidance(eps_cond, eps_null, self.w)


def guided_text_model(model: TextUNet, cond: TextCondition, null: TextCondition, w: float) -> nn.Module:
    """A module ``m(x, t)`` for the course samplers: ε̂ = (1 + w)·ε(x, t, cond) − w·ε(x, t, ∅)."""
    if not is_number(w):
        raise ValueError(f"w must be a finite float (0 = no guidance); got {w!r}.")
    return _Guided(model, cond, null, float(w))


@torch.no_grad()
def sample(model: TextUNet, diffusion: GaussianDiffusion, cond: TextCondition, null: TextCondition,
           w: float = LESSON_W, num_steps: int = 20, seed: int = 0, progress: bool = False,
           x_T: torch.Tensor | None = None) -> torch.Tensor:
    """DDIM (η = 0) with guidance for a batch of conditions; (B, 1, 16, 16) in [-1, 1], deterministic for a seed.

    ``x_T`` (B, 1, 16, 16): start from this noise instead of drawing it from ``seed`` (e.g. one noise for two
    prompts, to see what the words change).
    """
    if not is_int(seed):
        raise ValueError(f"seed must be an int; got {seed!r}.")
    dev = next(model.parameters()).device
    B, size = cond.embedding.shape[0], 16
    g = torch.Generator(device=dev).manual_seed(seed)
    if x_T is None:
        x_T = torch.randn((B, model.config.in_channels, size, size), generator=g, device=dev)
    elif not isinstance(x_T, torch.Tensor) or tuple(x_T.shape) != (B, model.config.in_channels, size, size):
        raise ValueError(f"x_T must be a tensor of shape {(B, model.config.in_channels, size, size)} (one noise "
                         f"image per condition); got {getattr(x_T, 'shape', type(x_T).__name__)}.")
    x_T = x_T.to(dev)
    guided = guided_text_model(model, cond.to(dev), null.to(dev), w)
    x = diffusion.ddim_sample_loop(guided, x_T=x_T, num_steps=num_steps, generator=g, progress=progress,
                                   clip_x0=True)
    return x.clamp(-1, 1)


_LOADED: dict = {}


def load_text2image(device: str | torch.device = "cpu", path=None):
    """The shipped ``text16`` (sha256-checked, EMA weights, eval mode) and the frozen CLIP it reads.

    Returns:
        (TextUNet, its GaussianDiffusion, the CLIP from :func:`course_utils.clip.load_clip`, the record).
    """
    from .checkpoints import load_shipped_module
    from .clip import load_clip

    model, meta = load_shipped_module(TEXT16, "TextUNet", TextUNet, device, path)
    dev = next(model.parameters()).device
    diffusion = GaussianDiffusion(meta["betas"], clip_x0=True).to(dev)
    return model, diffusion, load_clip(dev), meta


def generate(prompts: list[str], w: float = LESSON_W, num_steps: int = 20, seed: int = 0,
             device: str | torch.device = "cpu") -> torch.Tensor:
    """Images for prompts from the shipped ``text16``: DDIM-``num_steps`` with guidance ``w``.

    Args:
        prompts: B strings of the caption vocabulary (``course_utils.captions.VOCAB``), ≤ 10 words each;
            ``""`` draws from the unconditional model.
        w: guidance weight (0 = the plain conditional model). num_steps: DDIM steps in [1, 1000].
        seed: the starting noise and nothing else; the same seed gives the same images.
    Returns:
        (B, 1, 16, 16) float in [-1, 1], on the CPU.
    """
    if not is_number(w):
        raise ValueError(f"w must be a finite float (0 = no guidance); got {w!r}.")
    if not is_int(num_steps) or not 1 <= num_steps <= 1000:
        raise ValueError(f"num_steps must be an int in [1, 1000] (DDIM steps); got {num_steps!r}.")
    key = str(device)
    if key not in _LOADED:
        _LOADED[key] = load_text2image(device)
    model, diffusion, clip, _ = _LOADED[key]
    cond = encode_prompts(clip, prompts)
    null = encode_prompts(clip, [""] * len(prompts))
    return sample(model, diffusion, cond, null, w, num_steps, seed).cpu()


# ----------------------------------------------------------------------------------------------
# The shipped checkpoint (``text16``)
# ----------------------------------------------------------------------------------------------
TEXT16_RECIPE = {"steps": 2400, "batch_size": 128, "lr": 2e-3, "warmup_steps": 100, "ema_decay": 0.999,
                 "p_uncond": 0.1, "p_image": 0.1, "seed": 0, "T": 1000}


def _text16_setup(r: dict):
    from .clip import load_clip
    from .data import load_fashion_mnist
    from .schedules import linear_betas
    from .train import TrainConfig
    from .utils import set_seed

    set_seed(r["seed"])
    clip = load_clip("cpu")
    data = load_fashion_mnist(train=True, image_size=16)
    model = TextUNet()
    model.null_class = 10   # train() passes the labels to loss_fn only for models with a null class; none is dropped
    diffusion = GaussianDiffusion(linear_betas(r["T"]))
    cfg = TrainConfig(steps=r["steps"], batch_size=r["batch_size"], lr=r["lr"], warmup_steps=r["warmup_steps"],
                      ema_decay=r["ema_decay"], ema_warmup=False, p_uncond=0.0, seed=r["seed"], device="auto",
                      amp="off", progress=False, log_every=50)   # constant decay: remove_ema_start's formula
                                                                  # assumes it; fp32, as text16 was made
    return clip, data, model, diffusion, cfg, make_text_loss(clip, r["p_uncond"], r["p_image"], r["seed"])


def text16_first_step(r: dict | None = None) -> TextUNet:
    """The weights after the first training step of ``text16``, replayed exactly as :func:`build_text16` trains
    (same seed, data, captions and config, ``steps=1``): what :func:`course_utils.train.remove_ema_start` takes out."""
    import dataclasses

    from .train import train

    r = dict(TEXT16_RECIPE if r is None else r)
    clip, data, model, diffusion, cfg, loss_fn = _text16_setup(r)
    return train(model, diffusion, data, dataclasses.replace(cfg, steps=1), loss_fn=loss_fn).model.cpu()


def build_text16(directory=None, progress: bool = True, evaluate_after: bool = True, steps: int | None = None):
    """Train ``text16`` on the 60,000 training images with the frozen shipped CLIP; write it and its record.

    After training, the first step's share of the EMA is taken out (:func:`course_utils.train.remove_ema_start`:
    with β = 0.999 and 2400 steps it is 9 %, and it left the samples speckled).
    """
    import dataclasses
    import datetime
    import os
    import platform

    from .checkpoints import sidecar_path
    from .pretrained import ASSETS, BUILD_COMMAND, _git_commit
    from .train import remove_ema_start, train

    r = {**TEXT16_RECIPE, **({"steps": steps} if steps else {})}
    clip, data, model, diffusion, cfg, loss_fn = _text16_setup(r)
    result = train(model, diffusion, data, dataclasses.replace(cfg, progress=progress), loss_fn=loss_fn)
    ema = result.ema_model.cpu().eval()
    meta = {"name": TEXT16, "lessons": ["08"], "description": "text-conditioned U-Net (channels (32, 64), self- and "
            "cross-attention at 8 px, pooled CLIP embedding in the time embedding) reading the frozen clip16",
            "command": f"{BUILD_COMMAND} {TEXT16}" + (f" --steps {steps}" if steps else ""), "recipe": r, "seed": r["seed"],
            "model_config": ema.text_config.to_dict(), "betas": diffusion.betas.tolist(), "schedule": "linear",
            "clip_sha256": sidecar_path(ASSETS / "clip16.pt").read_text().split()[0],
            "wall_time_s": round(result.wall_time, 1), "images_per_second": round(result.images_per_second, 1),
            "final_loss_mean_last_100": round(sum(result.losses[-100:]) / len(result.losses[-100:]), 5),
            "threads": torch.get_num_threads(), "machine": f"{platform.machine()} {os.cpu_count()} logical cpus",
            "torch": torch.__version__, "git_commit": _git_commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if r["steps"] >= 2:
        remove_ema_start(ema, text16_first_step(r), r["ema_decay"], r["steps"])
        meta["ema_start_removed"] = round(r["ema_decay"] ** (r["steps"] - 1), 5)
    return finish_text16(ema, diffusion, clip, meta, directory, evaluate_after)


def finish_text16(ema: TextUNet, diffusion: GaussianDiffusion, clip, meta: dict, directory=None,
                  evaluate_after: bool = True):
    """Evaluate (optionally) and write ``text16.pt``, its sidecar and its ``.json`` record."""
    import time
    from pathlib import Path

    from .checkpoints import save_module_with_record
    from .pretrained import ASSETS

    ema = ema.cpu().eval()
    ema.null_class = None
    meta = {k: v for k, v in meta.items() if k not in ("sha256", "file_bytes", "evaluation")}
    meta["betas"] = diffusion.betas.tolist()
    path = Path(directory) / f"{TEXT16}.pt" if directory is not None else ASSETS / f"{TEXT16}.pt"
    if evaluate_after:
        t0 = time.perf_counter()
        meta["evaluation"] = evaluate_text2image(ema, diffusion.cpu(), clip)
        meta["evaluation"]["wall_time_s"] = round(time.perf_counter() - t0, 1)
    return save_module_with_record(path, "TextUNet", ema, ema.text_config.to_dict(), meta)


def typical_prompts(template: str = "a photo of a {}") -> list[str]:
    """One prompt per class with the class's most common attribute words in the training captions.

    "a photo of a sneaker" says nothing about size or shape; the typical prompt ("a photo of a small wide
    sneaker": 100 % of the training sneakers are "wide", 92 % "small") names the usual bands. When captions
    named every earned attribute, silence meant the middle band and the bare prompt asked for a sneaker that
    never occurs; since captions leave each word out at random (:data:`course_utils.captions.MENTION_PROBABILITY`)
    the two prompts should agree about as often — the evaluation measures both.
    """
    return [C.class_prompt(phrase, template) for phrase in _typical_phrases()]


@functools.lru_cache(maxsize=1)
def _typical_phrases() -> tuple[str, ...]:
    """Per class, its most common attribute words and its name ("small wide sneaker"), measured once on the
    60,000 training images (the data and the thresholds are fixed, so the answer is too)."""
    from .data import load_fashion_mnist

    data = load_fashion_mnist(train=True, image_size=16)
    levels = C.attribute_levels(C.measure_attributes(data.images))
    out = []
    for k in range(len(C.CLASS_SYNONYMS)):
        words = []
        for attr in ("size", "aspect", "brightness"):
            mode = int(torch.mode(levels[attr][data.labels == k]).values)
            if mode:
                words.append(C.ATTRIBUTE_WORDS[attr][0 if mode < 0 else 1][0])
        out.append(" ".join([*words, C.CLASS_SYNONYMS[k][0]]))
    return tuple(out)


@torch.no_grad()
def evaluate_text2image(model: TextUNet, diffusion: GaussianDiffusion, clip, per_class: int = 30,
                        ws=(0.0, 1.0, LESSON_W, 3.0, 5.0), pair_ws=(0.0, LESSON_W, 5.0), pairs_per_class: int = 20,
                        num_steps: int = 20, seed: int = 0) -> dict:
    """Class agreement of ``a photo of a {class}`` samples, attribute obedience and Fréchet distance per w.

    Where attribute pairs are drawn (``pair_ws``), also the class agreement of :func:`typical_prompts`.

    Attribute obedience: for each class and attribute (brightness: "dark" vs "light"; size: "small" vs
    "large"), the two prompts are sampled from the **same** starting noise; a pair is obeyed when the
    measured attribute (:func:`course_utils.captions.measure_attributes`) orders the two images as the
    words say.
    """
    from .data import load_fashion_mnist
    from .metrics import class_agreement, frechet_distances

    real = load_fashion_mnist(train=False, image_size=16, limit=1000).images
    labels = torch.arange(10).repeat_interleave(per_class)
    out: dict = {"sampler": f"DDIM-{num_steps}, eta 0, clip x0", "samples_per_w": int(labels.numel()),
                 "pairs_per_attribute": 10 * pairs_per_class, "per_w": {}}
    typical = typical_prompts()
    out["typical_prompts"] = typical
    # the conditions and the pairs' shared noise are the same for every w: encoded and drawn once
    null = encode_prompts(clip, [""] * labels.numel())
    cond = encode_prompts(clip, [C.class_prompt(int(y)) for y in labels])
    typical_cond = encode_prompts(clip, [typical[int(y)] for y in labels])
    pair_labels = torch.arange(10).repeat_interleave(pairs_per_class)
    n = pair_labels.numel()
    noise = torch.randn((n, 1, 16, 16), generator=torch.Generator().manual_seed(seed + 1))
    pair_null = encode_prompts(clip, [""] * (2 * n))
    pair_cond = {attr: encode_prompts(clip, [C.class_prompt(f"{word} {C.CLASS_SYNONYMS[int(y)][0]}")
                                             for word in (lo, hi) for y in pair_labels])
                 for attr, (lo, hi) in {"brightness": ("dark", "light"), "size": ("small", "large")}.items()}
    samples = []
    for w in ws:
        x = sample(model, diffusion, cond, null, w, num_steps, seed)
        samples.append(x)
        row = {"class_agreement": round(class_agreement(x, labels), 4)}
        if w in pair_ws:
            row["class_agreement_typical_prompt"] = round(
                class_agreement(sample(model, diffusion, typical_cond, null, w, num_steps, seed), labels), 4)
            for attr, pc in pair_cond.items():
                pair = sample(model, diffusion, pc, pair_null, w, num_steps, seed,
                              x_T=torch.cat([noise, noise]))                  # row i and i + n: same noise
                a = C.measure_attributes(pair)[attr]
                row[f"{attr}_pairs_obeyed"] = round(float((a[:n] < a[n:]).float().mean()), 4)
        out["per_w"][str(w)] = row
    # the real images' features once for the whole sweep
    for w, fd in zip(ws, frechet_distances(real, samples)):
        out["per_w"][str(w)]["frechet_distance"] = round(fd, 4)
    return out
