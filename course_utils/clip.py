"""A tiny CLIP (Radford et al. 2021) for 16×16 FashionMNIST and its captions.

* :class:`ImageEncoder` — a small CNN → a pooled vector; :class:`TextEncoder` — token embedding + learned
  positional embedding + pre-LayerNorm transformer blocks built from
  :class:`course_utils.attention.MultiHeadAttention`, pooled at the ``<eos>`` token (as in the paper).
* :class:`CLIP` — both encoders, linear projections to the shared space, a learned temperature
  ``logit_scale`` (log of the logits' multiplier), initialised to log(1/0.07) and clamped at log(100) as in
  §2.5 of the paper; :meth:`CLIP.encode_image` and :meth:`CLIP.encode_text` give L2-normalised embeddings.
* :func:`clip_loss` — the symmetric InfoNCE loss (the paper's Figure 3); :func:`similarity`;
  :func:`zero_shot_classify` with prompt ensembling (§3.1.4); :func:`train_clip` on (image, caption) pairs
  from :func:`course_utils.captions.make_captions`.

Conventions (see STYLE.md): images are (B, 1, 16, 16) float in [-1, 1]; prompts go through
:func:`course_utils.captions.tokenize`; every stochastic function takes ``generator``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import captions as C
from .attention import MultiHeadAttention
from .validation import check_generator, check_image_batch, is_int, is_number

__all__ = ["CLIPConfig", "ImageEncoder", "TextEncoder", "TransformerBlock", "CLIP", "clip_loss", "similarity",
           "zero_shot_classify", "train_clip", "INIT_LOGIT_SCALE", "MAX_LOGIT_SCALE", "CLIP16", "CLIP16_RECIPE",
           "save_clip", "load_clip", "retrieval_recall", "evaluate_clip", "build_clip16"]

INIT_LOGIT_SCALE = math.log(1 / 0.07)   # Radford et al. 2021, §2.5: temperature τ = 0.07 at the start
MAX_LOGIT_SCALE = math.log(100.0)       # … and the multiplier exp(logit_scale) clipped at 100


@dataclass
class CLIPConfig:
    """Hyper-parameters of :class:`CLIP`; every default trains in minutes on a laptop CPU."""

    embed_dim: int = 64                      # the shared space; 64 is plenty for 10 classes + 3 attributes
    image_channels: tuple[int, ...] = (32, 64)  # one width per stage; each stage halves: 16 → 8 → 4 px
    image_depth: int = 2                     # convolutions per image stage: one alone reaches ~80 % zero-shot
    image_size: int = 16                     # the course's FashionMNIST size
    width: int = 64                          # the text transformer's width
    text_layers: int = 2                     # captions are ≤ 10 words from a ~50-word vocabulary
    heads: int = 4                           # 16 channels per head at width 64
    mlp_ratio: int = 4                       # the transformer's usual MLP expansion
    max_len: int = 12                        # <bos> + ≤ 10 words + <eos>: every make_captions caption fits

    def __post_init__(self) -> None:
        def bad(name: str, expected: str, value) -> ValueError:
            return ValueError(f"CLIPConfig.{name} must be {expected}; got {value!r}.")

        for name in ("embed_dim", "width", "text_layers", "heads", "mlp_ratio", "image_size", "image_depth"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise bad(name, "a positive int", getattr(self, name))
        if isinstance(self.image_channels, list):
            self.image_channels = tuple(self.image_channels)
        if (not isinstance(self.image_channels, tuple) or not self.image_channels
                or not all(is_int(c) and c > 0 and c % 8 == 0 for c in self.image_channels)):
            raise bad("image_channels", "a non-empty tuple of positive multiples of 8 (GroupNorm uses 8 groups)",
                      self.image_channels)
        if self.width % self.heads:
            raise bad("width", f"divisible by heads={self.heads}", self.width)
        if not is_int(self.max_len) or self.max_len < 3:
            raise bad("max_len", "an int >= 3 (<bos>, a word, <eos>)", self.max_len)

    def to_dict(self) -> dict:
        """Plain ints and lists: safe for JSON and ``torch.load(weights_only=True)``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class ImageEncoder(nn.Module):
    """A small CNN: conv3x3 → per stage [conv3x3 stride 2 → GN → GELU, then ``depth − 1`` × (conv3x3 → GN →
    GELU)] → global mean pool.

    Args:
        channels: one width per stage (each halves the resolution).
        depth: convolutions per stage (the first one strided).
    Shapes:
        (B, 1, H, W) in [-1, 1] → (B, channels[-1]).
    """

    def __init__(self, channels: tuple[int, ...] = (32, 64), depth: int = 2):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, channels[0], 3, padding=1), nn.GELU()]
        prev = channels[0]
        for c in channels:
            layers += [nn.Conv2d(prev, c, 3, stride=2, padding=1), nn.GroupNorm(8, c), nn.GELU()]
            for _ in range(depth - 1):
                layers += [nn.Conv2d(c, c, 3, padding=1), nn.GroupNorm(8, c), nn.GELU()]
            prev = c
        self.net = nn.Sequential(*layers)
        self.out_dim = prev

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, H, W) → (B, channels[-1])."""
        return self.net(x).mean(dim=(2, 3))                               # (B, C)


class TransformerBlock(nn.Module):
    """Pre-LayerNorm transformer block: ``x + attn(LN(x))``, then ``x + MLP(LN(x))`` (GELU MLP).

    Args:
        width: model width; heads: attention heads; mlp_ratio: the MLP's hidden width / ``width``.
    """

    def __init__(self, width: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = MultiHeadAttention(width, heads)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, L, width), mask: (B, L) bool key-padding mask (True = real token) → (B, L, width)."""
        x = x + self.attn(self.ln1(x), mask=mask)
        return x + self.mlp(self.ln2(x))


class TextEncoder(nn.Module):
    """Token embedding + learned positional embedding + :class:`TransformerBlock` s + final LayerNorm.

    Attention is bidirectional (no causal mask: nothing here predicts the next word); ``<pad>`` keys are
    masked out. The sequence is **pooled at the** ``<eos>`` **token** (Radford et al. 2021, §2.4).

    Args:
        vocab_size, width, layers, heads, max_len, mlp_ratio: as in :class:`CLIPConfig`.
    Shapes:
        tokens (B, max_len) int64 from :func:`course_utils.captions.tokenize` → (B, width).
    """

    def __init__(self, vocab_size: int, width: int = 64, layers: int = 2, heads: int = 4, max_len: int = 12,
                 mlp_ratio: int = 4):
        super().__init__()
        self.max_len = max_len
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.randn(max_len, width) * 0.01)
        self.blocks = nn.ModuleList(TransformerBlock(width, heads, mlp_ratio) for _ in range(layers))
        self.ln_final = nn.LayerNorm(width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: (B, L) int64, L <= max_len, each row holding one ``<eos>`` → (B, width)."""
        x, _ = self.token_features(tokens)
        return self.pool(x, tokens)

    @staticmethod
    def pool(features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The sentence's vector: each row's output at its first ``<eos>`` (Radford et al. 2021, §2.4).

        features: (B, L, width) from :meth:`token_features`; tokens: (B, L) int64 → (B, width).
        """
        at_eos = (tokens == C.WORD_TO_ID[C.EOS]).long().argmax(dim=1)       # (B,) first <eos>
        return features[torch.arange(features.shape[0], device=features.device), at_eos]

    def token_features(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every position's output (what cross-attention in lesson 08's U-Net reads) and the padding mask.

        tokens: (B, L) int64 → ((B, L, width) after the final LayerNorm, (B, L) bool, True = real token).
        """
        eos = C.WORD_TO_ID[C.EOS]
        if (not isinstance(tokens, torch.Tensor) or tokens.ndim != 2 or tokens.is_floating_point()
                or tokens.shape[1] > self.max_len):
            raise ValueError(f"tokens must be an int64 tensor of shape (B, L <= {self.max_len}) from "
                             f"captions.tokenize; got {getattr(tokens, 'shape', type(tokens).__name__)}.")
        if not bool((tokens == eos).any(dim=1).all()):
            raise ValueError("tokens: every row needs an <eos> token (the text encoder pools there); "
                             "build them with captions.tokenize.")
        mask = tokens != C.WORD_TO_ID[C.PAD]                                # (B, L) True = real token
        x = self.token_embedding(tokens) + self.positional_embedding[: tokens.shape[1]]   # (B, L, width)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln_final(x), mask


def _check_clip_images(images, size: int) -> torch.Tensor:
    check_image_batch(images, "images")
    if images.shape[1:] != (1, size, size):
        raise ValueError(f"images must have shape (B, 1, {size}, {size}) (grey FashionMNIST at {size} px, e.g. "
                         f"load_fashion_mnist(image_size={size})); got {tuple(images.shape)}.")
    if images.numel() and (float(images.min()) < -1.0 - 1e-4 or float(images.max()) > 1.0 + 1e-4):
        raise ValueError(f"images must lie in [-1, 1]; got values in [{float(images.min()):.3g}, "
                         f"{float(images.max()):.3g}]. Scale [0, 1] images with x * 2 - 1.")
    return images


class CLIP(nn.Module):
    """Image and text encoders with linear projections into one ``embed_dim`` space (Radford et al. 2021).

    Args:
        config: a :class:`CLIPConfig` (None = the defaults).
    """

    def __init__(self, config: CLIPConfig | None = None):
        super().__init__()
        self.config = CLIPConfig() if config is None else config
        c = self.config
        self.image_encoder = ImageEncoder(c.image_channels, c.image_depth)
        self.text_encoder = TextEncoder(len(C.VOCAB), c.width, c.text_layers, c.heads, c.max_len, c.mlp_ratio)
        self.image_projection = nn.Linear(self.image_encoder.out_dim, c.embed_dim, bias=False)
        self.text_projection = nn.Linear(c.width, c.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(INIT_LOGIT_SCALE))   # log of the logits' multiplier

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    def clamped_logit_scale(self) -> torch.Tensor:
        """``logit_scale`` clamped at log(100) (the paper's clip of the multiplier at 100); 0-d."""
        return self.logit_scale.clamp(max=MAX_LOGIT_SCALE)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, 1, 16, 16) float in [-1, 1] → (B, embed_dim), unit L2 norm."""
        _check_clip_images(images, self.config.image_size)
        return F.normalize(self.image_projection(self.image_encoder(images.to(self.device))), dim=-1)

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: (B, max_len) int64 from :func:`course_utils.captions.tokenize` → (B, embed_dim), unit norm."""
        return F.normalize(self.text_projection(self.text_encoder(tokens.to(self.device))), dim=-1)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """texts: B prompts (≤ max_len tokens with <bos> and <eos>) → (B, embed_dim), unit L2 norm."""
        return self.encode_tokens(C.tokenize(texts, self.config.max_len))

    @torch.no_grad()
    def text_features(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What a text-conditioned U-Net reads from frozen CLIP: per-token features, their mask, the embedding.

        texts: B prompts (``""`` is the empty prompt, classifier-free guidance's null condition) →
        (tokens (B, max_len, width), mask (B, max_len) bool, embedding (B, embed_dim) unit norm).
        """
        tokens = C.tokenize(texts, self.config.max_len).to(self.device)
        feats, mask = self.text_encoder.token_features(tokens)
        pooled = self.text_encoder.pool(feats, tokens)                      # the same vector encode_text uses
        return feats, mask, F.normalize(self.text_projection(pooled), dim=-1)

    def forward(self, images: torch.Tensor, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image_emb (B, D), text_emb (B, D), clamped logit_scale 0-d) for :func:`clip_loss`."""
        if isinstance(texts, (list, tuple)) and len(texts) != images.shape[0]:
            raise ValueError(f"texts must hold one caption per image: {images.shape[0]} images but {len(texts)} "
                             f"texts.")
        return self.encode_image(images), self.encode_text(texts), self.clamped_logit_scale()


def _check_pair(image_emb, text_emb, same_batch: bool) -> None:
    for name, e in (("image_emb", image_emb), ("text_emb", text_emb)):
        if not isinstance(e, torch.Tensor) or e.ndim != 2 or not e.is_floating_point() or e.shape[0] == 0:
            raise ValueError(f"{name} must be a float tensor of shape (B, D) with B >= 1; got "
                             f"{getattr(e, 'shape', type(e).__name__)}.")
    if image_emb.shape[1] != text_emb.shape[1]:
        raise ValueError(f"image_emb and text_emb must share the embedding width D; got {tuple(image_emb.shape)} "
                         f"and {tuple(text_emb.shape)}.")
    if same_batch and image_emb.shape[0] != text_emb.shape[0]:
        raise ValueError(f"image_emb and text_emb must hold matching pairs (row i of each belongs together), so the "
                         f"same B; got {tuple(image_emb.shape)} and {tuple(text_emb.shape)}.")


def similarity(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """Cosine similarities, every image against every text.

    Args:
        image_emb: (B_i, D); text_emb: (B_t, D) (normalised here, so raw embeddings are fine too).
    Returns:
        (B_i, B_t) in [-1, 1].
    """
    _check_pair(image_emb, text_emb, same_batch=False)
    return F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T


def clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale) -> torch.Tensor:
    """Symmetric InfoNCE (Radford et al. 2021, Figure 3): image i and text i are the positive pair.

    ``logits = exp(logit_scale) · image_emb @ text_embᵀ``; the loss is the mean of the cross-entropy over
    the rows (each image picks its text) and over the columns (each text picks its image), labels = the
    diagonal. ``logit_scale`` is clamped at log(100) first.

    Args:
        image_emb: (B, D), L2-normalised; text_emb: (B, D), L2-normalised, row i matches image i.
        logit_scale: the **log** of the multiplier (``CLIP.logit_scale``), a float or a 0-d tensor.
    Returns:
        0-d tensor.
    """
    _check_pair(image_emb, text_emb, same_batch=True)
    if isinstance(logit_scale, torch.Tensor):
        if logit_scale.numel() != 1 or not logit_scale.is_floating_point():
            raise ValueError(f"logit_scale must be a float or a 0-d float tensor (the log of the multiplier); "
                             f"got shape {tuple(logit_scale.shape)}, dtype {logit_scale.dtype}.")
        scale = logit_scale.reshape(()).clamp(max=MAX_LOGIT_SCALE).exp()
    elif is_number(logit_scale):
        scale = math.exp(min(float(logit_scale), MAX_LOGIT_SCALE))
    else:
        raise ValueError(f"logit_scale must be a float or a 0-d float tensor (the log of the multiplier); "
                         f"got {type(logit_scale).__name__}.")
    logits = scale * image_emb @ text_emb.T                                # (B, B) images × texts
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


@torch.no_grad()
def zero_shot_classify(model, images: torch.Tensor, class_names, templates=("a photo of a {}",)) -> torch.Tensor:
    """Zero-shot classification (Radford et al. 2021, §3.1) with prompt ensembling (§3.1.4).

    For each class, the prompts ``class_prompt(name, template)`` of every template are encoded, their
    L2-normalised embeddings averaged and renormalised; each image gets the class with the highest cosine
    similarity. Only ``model.encode_image`` and ``model.encode_text`` are used.

    Args:
        model: a :class:`CLIP` (or anything with those two methods).
        images: (B, 1, 16, 16) float in [-1, 1].
        class_names: K class names or labels, e.g. ``data.FASHION_MNIST_CLASSES``.
        templates: strings with one ``{}`` each, e.g. ``("a photo of a {}", "a {}")``.
    Returns:
        (B,) int64 predictions, indices into ``class_names``.
    """
    if isinstance(class_names, str) or not isinstance(class_names, (list, tuple)) or not class_names:
        raise ValueError(f"class_names must be a non-empty list of class names; got {class_names!r}.")
    if isinstance(templates, str) or not isinstance(templates, (list, tuple)) or not templates:
        raise ValueError(f"templates must be a non-empty list of strings with one '{{}}', e.g. "
                         f"['a photo of a {{}}']; got {templates!r}.")
    image_emb = F.normalize(model.encode_image(images), dim=-1)                  # (B, D)
    class_emb = []
    for name in class_names:
        prompts = [C.class_prompt(name, t) for t in templates]
        emb = F.normalize(model.encode_text(prompts), dim=-1)                    # (T, D)
        class_emb.append(F.normalize(emb.mean(dim=0), dim=-1))                   # (D,)
    class_emb = torch.stack(class_emb).to(image_emb.device)                      # (K, D)
    return (image_emb @ class_emb.T).argmax(dim=1)                                # (B,)


def train_clip(model: CLIP, data, steps: int, batch_size: int = 64, lr: float = 1e-3,
               generator: torch.Generator | None = None, weight_decay: float = 0.01,
               warmup_steps: int = 100, loss_fn=None) -> list[float]:
    """Train on (image, :func:`~course_utils.captions.make_captions` caption) pairs with AdamW and
    :func:`clip_loss`.

    Each step draws ``batch_size`` distinct images (``torch.randperm`` with ``generator``) and fresh
    captions for them (same generator); after each step ``logit_scale`` is clamped to [0, log 100] as in
    the paper. Same model weights, data and generator seed → same losses.

    Args:
        model: a :class:`CLIP`, trained in place.
        data: a :class:`course_utils.data.TensorDataset` or a pair (images (N, 1, 16, 16), labels (N,)).
        steps: optimiser steps, >= 1.
        batch_size: pairs per step, in [2, N] (the loss contrasts a pair with the batch's others).
        lr: AdamW's peak learning rate, reached after ``warmup_steps`` linear steps, then decayed to 0 on a
            cosine (Radford et al. 2021, §2.5); weight_decay: AdamW's decoupled weight decay.
        generator: a CPU ``torch.Generator`` (or None: the global RNG).
        loss_fn: ``loss_fn(image_emb, text_emb, logit_scale) -> 0-d tensor`` (default :func:`clip_loss`;
            lesson 08 passes the learner's own), called with the normalised embeddings and the clamped
            ``logit_scale``.
    Returns:
        ``steps`` floats, the loss of each step.
    """
    images, labels = (data.images, data.labels) if hasattr(data, "images") else data
    _check_clip_images(images, model.config.image_size)
    check_generator(generator, torch.device("cpu"), "the batches and captions (drawn on the CPU)")
    if not is_int(steps) or steps < 1:
        raise ValueError(f"steps must be an int >= 1; got {steps!r}.")
    if not is_int(batch_size) or not 2 <= batch_size <= images.shape[0]:
        raise ValueError(f"batch_size must be an int in [2, {images.shape[0]}] (the number of images); "
                         f"got {batch_size!r}.")
    if not is_number(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive number, e.g. 1e-3; got {lr!r}.")
    if loss_fn is not None and not callable(loss_fn):
        raise ValueError(f"loss_fn must be callable as loss_fn(image_emb, text_emb, logit_scale); got "
                         f"{type(loss_fn).__name__}.")
    if not is_int(warmup_steps) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be an int >= 0; got {warmup_steps!r}.")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    warm = max(1, min(warmup_steps, steps))
    sched = torch.optim.lr_scheduler.LambdaLR(     # linear warm-up, then cosine decay to 0 (as in the paper, §2.5)
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm))))
    model.train()
    losses = []
    for _ in range(steps):
        idx = torch.randperm(images.shape[0], generator=generator)[:batch_size]
        x, y = images[idx], labels[idx].cpu()
        texts = C.make_captions(x.cpu(), y, generator=generator, max_len=model.config.max_len)
        loss = (loss_fn or clip_loss)(*model(x, texts))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0.0, MAX_LOGIT_SCALE)
        losses.append(loss.detach().item())
    model.eval()
    return losses


# ----------------------------------------------------------------------------------------------
# The shipped CLIP (``clip16``): how it is trained, measured, saved and loaded
# ----------------------------------------------------------------------------------------------
CLIP16 = "clip16"
CLIP16_RECIPE = {"steps": 1000, "batch_size": 256, "lr": 2e-3, "weight_decay": 0.01, "warmup_steps": 100, "seed": 0}
_KIND = "CLIP"


def _clip16_path(directory=None):
    from pathlib import Path

    from .pretrained import ASSETS
    return (Path(directory) if directory is not None else ASSETS) / f"{CLIP16}.pt"


def save_clip(path, model: CLIP, meta: dict | None = None):
    """Write ``model`` (its config and weights) with a sha256 sidecar; :func:`load_clip` reads it."""
    from .checkpoints import save_module

    if not isinstance(model, CLIP):
        raise ValueError(f"save_clip needs a course_utils.clip.CLIP; got {type(model).__name__}.")
    return save_module(path, _KIND, model, model.config.to_dict(), meta)


def load_clip(device: str | torch.device = "cpu", path=None) -> CLIP:
    """The shipped tiny CLIP (``clip16``), sha256-checked, in eval mode with frozen weights.

    ``encode_text(list[str]) -> (B, 64)`` and ``encode_image((B, 1, 16, 16) in [-1, 1]) -> (B, 64)``, both
    L2-normalised. ``model.meta`` holds the training record (command, wall time, evaluation).

    Args:
        device: "cpu", "cuda", "auto", …; path: another file written by :func:`save_clip`.
    """
    from .checkpoints import load_shipped_module

    def build(cfg: dict) -> CLIP:
        return CLIP(CLIPConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}))

    model, meta = load_shipped_module(CLIP16, _KIND, build, device, path)
    model.meta = meta
    return model


@torch.no_grad()
def retrieval_recall(model, images: torch.Tensor, texts: list[str], ks=(1, 5)) -> dict[str, float]:
    """Text → image retrieval: the share of captions whose own image is among the top k of all images.

    Args:
        images: (N, 1, 16, 16) in [-1, 1]; texts: N captions, ``texts[i]`` describing ``images[i]``.
    Returns:
        ``{"recall@1": …, "recall@5": …}`` in [0, 1]; chance is k / N.
    """
    if not isinstance(texts, (list, tuple)) or len(texts) != images.shape[0]:
        raise ValueError(f"texts must hold one caption per image ({images.shape[0]}); got "
                         f"{len(texts) if isinstance(texts, (list, tuple)) else type(texts).__name__}.")
    sim = torch.cat([model.encode_text(list(texts[i:i + 500])) for i in range(0, len(texts), 500)]) @ \
        torch.cat([model.encode_image(images[i:i + 500]) for i in range(0, images.shape[0], 500)]).T   # (N, N)
    own = sim.diagonal().unsqueeze(1)
    rank = (sim > own).sum(dim=1)                                  # how many images beat the right one
    return {f"recall@{k}": round(float((rank < k).float().mean()), 4) for k in ks}


@torch.no_grad()
def evaluate_clip(model, test_images: torch.Tensor, test_labels: torch.Tensor, retrieval_n: int = 1000,
                  seed: int = 0) -> dict:
    """The figures recorded beside ``clip16``: zero-shot accuracy (one template and the ensemble of
    :data:`course_utils.captions.TEMPLATES`) and text → image recall on held-out captions."""
    from .data import FASHION_MNIST_CLASSES

    def accuracy(templates) -> float:
        pred = torch.cat([zero_shot_classify(model, test_images[i:i + 1000], list(FASHION_MNIST_CLASSES), templates)
                          for i in range(0, test_images.shape[0], 1000)])
        return round(float((pred.cpu() == test_labels.cpu()).float().mean()), 4)

    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(test_images.shape[0], generator=g)[:retrieval_n]
    texts = C.make_captions(test_images[idx], test_labels[idx], generator=g, max_len=model.config.max_len)
    ensemble = tuple(t.format("a {}") for t in C.TEMPLATES)
    return {"test_images": int(test_images.shape[0]),
            "zero_shot_accuracy": accuracy(("a photo of a {}",)),
            "zero_shot_accuracy_ensemble": accuracy(ensemble), "ensemble_templates": list(ensemble),
            "retrieval_captions": int(retrieval_n), **retrieval_recall(model, test_images[idx], texts),
            "retrieval_chance@1": round(1 / retrieval_n, 4)}


def build_clip16(directory=None, progress: bool = True, evaluate_after: bool = True, steps: int | None = None):
    """Train the shipped CLIP from scratch (:data:`CLIP16_RECIPE`), evaluate it, write ``clip16.pt`` + record."""
    import datetime
    import json
    import os
    import platform
    import time

    from .checkpoints import sidecar_path
    from .data import load_fashion_mnist
    from .pretrained import BUILD_COMMAND, _git_commit
    from .utils import set_seed

    rec = {**CLIP16_RECIPE, **({"steps": steps} if steps else {})}
    set_seed(rec["seed"])
    data = load_fashion_mnist(train=True, image_size=16)
    model = CLIP()
    t0 = time.perf_counter()
    losses = train_clip(model, data, rec["steps"], rec["batch_size"], rec["lr"],
                        generator=torch.Generator().manual_seed(rec["seed"]), weight_decay=rec["weight_decay"],
                        warmup_steps=rec["warmup_steps"])
    wall = time.perf_counter() - t0
    meta = {"name": CLIP16, "lessons": ["08"], "description": "tiny CLIP (CNN image tower, 2-layer transformer "
            "text tower, 64-d shared space) on 16 px FashionMNIST with make_captions captions",
            "command": f"{BUILD_COMMAND} {CLIP16}" + (f" --steps {steps}" if steps else ""),
            "recipe": rec, "seed": rec["seed"], "model_config": model.config.to_dict(), "wall_time_s": round(wall, 1),
            "final_loss_mean_last_100": round(sum(losses[-100:]) / len(losses[-100:]), 4),
            "logit_scale": round(float(model.logit_scale.detach()), 4), "threads": torch.get_num_threads(),
            "machine": f"{platform.machine()} {os.cpu_count()} logical cpus", "torch": torch.__version__,
            "git_commit": _git_commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if evaluate_after:
        test = load_fashion_mnist(train=False, image_size=16)
        t1 = time.perf_counter()
        meta["evaluation"] = evaluate_clip(model, test.images, test.labels)
        meta["evaluation"]["wall_time_s"] = round(time.perf_counter() - t1, 1)
    path = save_clip(_clip16_path(directory), model, meta)
    meta["sha256"] = sidecar_path(path).read_text().split()[0]
    meta["file_bytes"] = path.stat().st_size
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path
