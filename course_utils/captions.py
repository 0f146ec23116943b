"""Captions for FashionMNIST images and the word-level tokenizer of lesson 08's tiny CLIP.

A caption is made from the class (with a synonym drawn from a small fixed table) and from attributes
*measured on the pixels*, so that a text encoder has something to learn beyond the ten class names:

* **brightness**: the mean intensity of the item's (foreground) pixels → "dark" / "light" (or
  "light-coloured"), nothing in the middle band;
* **size**: the fraction of the frame the item fills → "small" / "large", nothing in the middle band;
* **shape**: width / height of the foreground's bounding box → "tall" / "wide", nothing in the middle.

A word earned by the pixels is written only with probability :data:`MENTION_PROBABILITY` (½), drawn anew
for every caption, as people leave out most of what they could say. This matters for a text-to-image model:
if every dark item were always called "dark", then "a photo of a sneaker" would mean *a sneaker that is
neither dark nor light, neither small nor large, neither tall nor wide* — a sneaker FashionMNIST hardly has
(nearly every sneaker is wide), and a model trained on such captions draws something else for the bare
name. With words left out at random, silence means "any".

Each attribute's two thresholds are the 1/3 and 2/3 quantiles of the measurement on the training split
(:func:`attribute_thresholds`), so each of the three bands (low, neutral, high) holds about a third of the
images. The numbers are stored as constants below (``BRIGHTNESS_THRESHOLDS`` …) so captions never depend
on which images happen to be loaded.

Templates: ``"a photo of a dark sneaker"``, ``"a large light-coloured pullover"``, ``"a small bag"``.

The tokenizer (:func:`tokenize`, :func:`detokenize`, :data:`VOCAB`) is word-level: lower-case, split on
spaces and hyphens, unknown words → ``<unk>``; each row is ``<bos> w1 … wn <eos> <pad> …``.

Conventions (see STYLE.md): images are ``(B, 1, H, W)`` in [-1, 1]; every stochastic function takes
``generator``; misuse raises a ``ValueError`` that names the argument and the fix.
"""
from __future__ import annotations

import re

import torch

from .data import FASHION_MNIST_CLASSES
from .validation import as_batch_vector, check_generator, check_image_batch, is_int, is_number

__all__ = [
    "CLASS_SYNONYMS", "TEMPLATES", "ATTRIBUTE_WORDS", "FOREGROUND_LEVEL", "BRIGHTNESS_THRESHOLDS",
    "SIZE_THRESHOLDS", "ASPECT_THRESHOLDS", "THRESHOLDS", "measure_attributes", "attribute_thresholds",
    "attribute_levels", "MENTION_PROBABILITY", "make_captions", "class_prompt", "SPECIAL_TOKENS", "PAD", "BOS",
    "EOS", "UNK", "VOCAB", "WORD_TO_ID", "split_words", "tokenize", "detokenize",
]

# ----------------------------------------------------------------------------------------------
# Fixed tables
# ----------------------------------------------------------------------------------------------
# One tuple per FashionMNIST label (0 … 9, the order of data.FASHION_MNIST_CLASSES); the first entry is
# the canonical name that class_prompt(label) uses.
CLASS_SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("t-shirt", "top", "tee"),                        # 0 T-shirt/top
    ("trouser", "pair of trousers", "trousers"),      # 1 Trouser
    ("pullover", "sweater", "jumper"),                # 2 Pullover
    ("dress", "frock"),                               # 3 Dress
    ("coat", "jacket"),                               # 4 Coat
    ("sandal", "summer shoe"),                        # 5 Sandal
    ("shirt", "blouse"),                              # 6 Shirt
    ("sneaker", "trainer"),                           # 7 Sneaker
    ("bag", "handbag"),                               # 8 Bag
    ("ankle boot", "boot"),                           # 9 Ankle boot
)

# "{}" takes the article, the adjectives and the name: "a photo of {}" → "a photo of a small bag".
TEMPLATES: tuple[str, ...] = ("a photo of {}", "a picture of {}", "an image of {}", "{}")

# (low word(s), high word(s)) per attribute; the middle band says nothing. Adjective order in a caption:
# size, shape, brightness ("a large wide dark bag"), the usual English order.
ATTRIBUTE_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "size": (("small",), ("large",)),
    "aspect": (("tall",), ("wide",)),
    "brightness": (("dark",), ("light", "light-coloured")),
}

# A pixel belongs to the item when it is brighter than this (in [-1, 1]: 10 % grey on [0, 1]); the
# background of FashionMNIST is exactly -1, resizing to 16 px blurs the edges a little.
FOREGROUND_LEVEL = -0.8

# (low, high) thresholds: below low → low word, above high → high word, between → nothing.
# Obtained with attribute_thresholds(load_fashion_mnist(train=True, image_size=16).images) — the 1/3 and
# 2/3 quantiles over all 60 000 training images, rounded to 3 decimals — so each band holds ~1/3.
BRIGHTNESS_THRESHOLDS = (-0.045, 0.242)   # mean foreground intensity, in [-1, 1]
SIZE_THRESHOLDS = (0.426, 0.605)          # fraction of the 16x16 frame covered by foreground pixels
ASPECT_THRESHOLDS = (0.750, 1.067)        # bounding-box width / height
THRESHOLDS = {"brightness": BRIGHTNESS_THRESHOLDS, "size": SIZE_THRESHOLDS, "aspect": ASPECT_THRESHOLDS}

# The chance that a caption names an attribute the pixels earned (each attribute, each caption, drawn
# anew): silence then means "any" rather than "the middle band" (see the module docstring).
MENTION_PROBABILITY = 0.5


# ----------------------------------------------------------------------------------------------
# Attributes measured on the pixels
# ----------------------------------------------------------------------------------------------
def _check_grey_images(images, name: str = "images") -> torch.Tensor:
    check_image_batch(images, name)
    if images.shape[1] != 1:
        raise ValueError(f"{name} must have one (grey) channel, shape (B, 1, H, W); got {tuple(images.shape)}.")
    if images.numel() and (float(images.min()) < -1.0 - 1e-4 or float(images.max()) > 1.0 + 1e-4):
        raise ValueError(f"{name} must lie in [-1, 1]; got values in [{float(images.min()):.3g}, "
                         f"{float(images.max()):.3g}]. Scale [0, 1] images with x * 2 - 1.")
    return images


def measure_attributes(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The pixel measurements behind the captions' adjectives.

    A pixel is *foreground* when it is above :data:`FOREGROUND_LEVEL`. An image with no foreground pixel
    gets brightness -1, size 0 and aspect 1.

    Args:
        images: (B, 1, H, W) float, in [-1, 1] (FashionMNIST: background -1).
    Returns:
        dict of (B,) float32 tensors:
        ``"brightness"`` — mean intensity of the foreground pixels, in [-1, 1];
        ``"size"`` — fraction of the H·W pixels that are foreground, in [0, 1];
        ``"aspect"`` — width / height of the foreground's bounding box (> 1: wide, < 1: tall).
    Raises:
        ValueError: not a (B, 1, H, W) float tensor in [-1, 1].
    """
    _check_grey_images(images)
    x = images[:, 0].float()                                           # (B, H, W)
    fg = x > FOREGROUND_LEVEL                                          # (B, H, W) bool
    count = fg.sum(dim=(1, 2)).float()                                 # (B,)
    has = count > 0
    brightness = torch.where(has, (x * fg).sum(dim=(1, 2)) / count.clamp(min=1), torch.full_like(count, -1.0))
    size = count / (x.shape[1] * x.shape[2])
    rows, cols = fg.any(dim=2), fg.any(dim=1)                          # (B, H), (B, W)

    def extent(occupied: torch.Tensor) -> torch.Tensor:                # (B, L) bool → (B,) bounding length
        idx = torch.arange(occupied.shape[1], device=occupied.device).float()
        first = torch.where(occupied, idx, torch.full_like(idx, float("inf"))).amin(dim=1)
        last = torch.where(occupied, idx, torch.full_like(idx, -float("inf"))).amax(dim=1)
        return torch.where(occupied.any(dim=1), last - first + 1, torch.ones_like(first))

    aspect = extent(cols) / extent(rows)
    return {"brightness": brightness, "size": size, "aspect": aspect}


def attribute_thresholds(images: torch.Tensor, quantiles: tuple[float, float] = (1 / 3, 2 / 3)
                         ) -> dict[str, tuple[float, float]]:
    """The (low, high) thresholds of each attribute: quantiles of :func:`measure_attributes` over ``images``.

    With the default quantiles each band (low word, nothing, high word) holds about a third of the images.
    This is how the constants :data:`BRIGHTNESS_THRESHOLDS`, :data:`SIZE_THRESHOLDS` and
    :data:`ASPECT_THRESHOLDS` were obtained (on the 16 px training split, rounded to 3 decimals).

    Args:
        images: (N, 1, H, W) float in [-1, 1].
        quantiles: (q_low, q_high) with 0 < q_low < q_high < 1.
    Returns:
        ``{"brightness": (low, high), "size": (low, high), "aspect": (low, high)}`` as Python floats.
    """
    if (not isinstance(quantiles, (tuple, list)) or len(quantiles) != 2
            or not all(is_number(q) for q in quantiles)
            or not 0 < quantiles[0] < quantiles[1] < 1):
        raise ValueError(f"quantiles must be two numbers 0 < q_low < q_high < 1, e.g. (1/3, 2/3); got {quantiles!r}.")
    attrs = measure_attributes(images)
    q = torch.tensor([float(quantiles[0]), float(quantiles[1])], dtype=torch.float64)
    return {k: tuple(float(v) for v in torch.quantile(a.double().cpu(), q)) for k, a in attrs.items()}


def attribute_levels(attrs: dict[str, torch.Tensor], thresholds: dict | None = None) -> dict[str, torch.Tensor]:
    """Bands of the measurements: -1 (below low: "dark", "small", "tall"), 0 (neutral), +1 (above high).

    Args:
        attrs: the dict of (B,) tensors from :func:`measure_attributes`.
        thresholds: ``{name: (low, high)}``; None = :data:`THRESHOLDS`.
    Returns:
        dict of (B,) int64 tensors with values in {-1, 0, 1}, same keys as ``thresholds``.
    """
    thresholds = THRESHOLDS if thresholds is None else thresholds
    out = {}
    for name, (low, high) in thresholds.items():
        a = attrs[name]
        out[name] = (a > high).long() - (a < low).long()
    return out


# ----------------------------------------------------------------------------------------------
# Captions and prompts
# ----------------------------------------------------------------------------------------------
_ARTICLE = re.compile(r"\ba ([aeiou])")


def _fix_articles(text: str) -> str:
    """"a ankle boot" → "an ankle boot" (every vowel-initial word in the vocabulary takes "an")."""
    return _ARTICLE.sub(r"an \1", text)


def _pick(options: tuple, generator: torch.Generator | None):
    return options[int(torch.randint(len(options), (1,), generator=generator))]


def make_captions(images: torch.Tensor, labels, generator: torch.Generator | None = None,
                  max_len: int = 12, mention: float = MENTION_PROBABILITY) -> list[str]:
    """One caption per image, from its class and its measured attributes.

    For each image, in order, the generator draws: a synonym of the class (:data:`CLASS_SYNONYMS`); for each
    non-neutral attribute, whether the caption names it (probability ``mention``) and, if it does and the
    attribute has several words, which one ("light" / "light-coloured"); and a template among the
    :data:`TEMPLATES` whose caption fits in ``max_len`` tokens with ``<bos>`` and ``<eos>`` (``"{}"`` always
    fits). Same images, labels and generator seed → same captions.

    Args:
        images: (B, 1, H, W) float in [-1, 1].
        labels: (B,) int64 class labels in [0, 9] (an int or a list of ints is accepted too).
        generator: a CPU ``torch.Generator`` (or None: the global RNG).
        max_len: the tokenizer's row length the captions must fit in (CLIPConfig.max_len).
        mention: the probability in [0, 1] that a non-neutral attribute is named (1: always, as a
            measurement report would; 0: class names only).
    Returns:
        B strings, e.g. ``"a photo of a large dark sneaker"``.
    """
    _check_grey_images(images)
    check_generator(generator, torch.device("cpu"), "the caption choices (drawn on the CPU)")
    if not is_int(max_len) or max_len < 3:
        raise ValueError(f"max_len must be an int >= 3 (<bos>, one word, <eos>); got {max_len!r}.")
    if not is_number(mention) or not 0 <= float(mention) <= 1:
        raise ValueError(f"mention must be a probability in [0, 1] (the chance a caption names an attribute); "
                         f"got {mention!r}.")
    if isinstance(labels, (list, tuple)) and all(is_int(y) for y in labels):
        labels = torch.tensor(labels, dtype=torch.long).reshape(-1)
    labels = as_batch_vector(
        labels, images.shape[0], torch.device("cpu"), name="labels", per="class label",
        type_error="labels must be an int class label or an int64 tensor of shape (B,); got {got}.")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(CLASS_SYNONYMS)):
        raise ValueError(f"labels must lie in [0, {len(CLASS_SYNONYMS) - 1}] (FashionMNIST classes); "
                         f"got {int(labels.min())}..{int(labels.max())}.")
    levels = attribute_levels(measure_attributes(images))
    captions = []
    for i, y in enumerate(labels.tolist()):
        name = _pick(CLASS_SYNONYMS[y], generator)
        words = []
        for attr in ("size", "aspect", "brightness"):      # the English adjective order
            level = int(levels[attr][i])
            if level and float(torch.rand((), generator=generator)) < mention:
                words.append(_pick(ATTRIBUTE_WORDS[attr][0 if level < 0 else 1], generator))
        phrase = _fix_articles(" ".join(["a", *words, name]))
        fitting = tuple(t for t in TEMPLATES if len(split_words(t.format(phrase))) + 2 <= max_len)
        if not fitting:
            raise ValueError(f"max_len={max_len} is too short for the caption {phrase!r}; use max_len >= "
                             f"{len(split_words(phrase)) + 2}.")
        captions.append(_pick(fitting, generator).format(phrase))
    return captions


def class_prompt(label_or_name, template: str = "a photo of a {}") -> str:
    """A zero-shot prompt for one class: ``class_prompt(7) == "a photo of a sneaker"``.

    Args:
        label_or_name: an int label in [0, 9] (→ its canonical name, the first of :data:`CLASS_SYNONYMS`),
            a FashionMNIST class name such as ``"T-shirt/top"`` (→ its canonical name) or any other string
            (used as given, lower-cased).
        template: a string with one ``{}``; "a" before a vowel becomes "an" ("a photo of an ankle boot").
    Returns:
        The prompt string.
    """
    if not isinstance(template, str) or template.count("{}") != 1:
        raise ValueError(f"template must be a string with exactly one '{{}}' for the class name, e.g. "
                         f"'a photo of a {{}}'; got {template!r}.")
    if is_int(label_or_name):
        if not 0 <= label_or_name < len(CLASS_SYNONYMS):
            raise ValueError(f"label_or_name must be a label in [0, {len(CLASS_SYNONYMS) - 1}] or a class name; "
                             f"got {label_or_name}.")
        name = CLASS_SYNONYMS[label_or_name][0]
    elif isinstance(label_or_name, str) and label_or_name.strip():
        name = label_or_name.strip()
        if name in FASHION_MNIST_CLASSES:
            name = CLASS_SYNONYMS[FASHION_MNIST_CLASSES.index(name)][0]
        name = name.lower()
    else:
        raise ValueError(f"label_or_name must be an int label in [0, {len(CLASS_SYNONYMS) - 1}] or a non-empty "
                         f"class name; got {label_or_name!r}.")
    return _fix_articles(template.format(name))


# ----------------------------------------------------------------------------------------------
# Word-level tokenizer
# ----------------------------------------------------------------------------------------------
PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)       # ids 0, 1, 2, 3: <pad> = 0 so zeros are padding
_SPLIT = re.compile(r"[\s\-]+")


def split_words(text: str) -> list[str]:
    """Lower-case and split on spaces and hyphens: ``"A light-coloured T-shirt"`` → 6 words."""
    return [w for w in _SPLIT.split(text.lower()) if w]


def _all_words() -> list[str]:
    words = set()
    for names in CLASS_SYNONYMS:
        for n in names:
            words.update(split_words(n))
    for t in TEMPLATES + ("a photo of a {}",):
        words.update(split_words(t.format("")))
    for low, high in ATTRIBUTE_WORDS.values():
        for w in low + high:
            words.update(split_words(w))
    words.update(("a", "an"))
    return sorted(words)


VOCAB: tuple[str, ...] = SPECIAL_TOKENS + tuple(_all_words())
WORD_TO_ID: dict[str, int] = {w: i for i, w in enumerate(VOCAB)}


def tokenize(texts: list[str], max_len: int = 12) -> torch.Tensor:
    """Word ids, one row per text: ``<bos> w1 … wn <eos>`` then ``<pad>`` (id 0) up to ``max_len``.

    Lower-cases, splits on spaces and hyphens (:func:`split_words`); a word not in :data:`VOCAB` becomes
    ``<unk>``. ``<bos>`` and ``<eos>`` count towards ``max_len``, so a prompt has at most max_len - 2 words.

    Args:
        texts: a non-empty list of strings.
        max_len: the row length (CLIPConfig.max_len), an int >= 2.
    Returns:
        (B, max_len) int64 ids into :data:`VOCAB`.
    Raises:
        ValueError: an empty list, a bare string, a non-string element, or a text longer than max_len tokens.
    """
    if not is_int(max_len) or max_len < 2:
        raise ValueError(f"max_len must be an int >= 2 (room for <bos> and <eos>); got {max_len!r}.")
    if isinstance(texts, str):
        raise ValueError(f"texts must be a list of strings; got a single str. Wrap one prompt as [{texts!r}].")
    if not isinstance(texts, (list, tuple)):
        raise ValueError(f"texts must be a list of strings; got {type(texts).__name__}.")
    if len(texts) == 0:
        raise ValueError("texts must be a non-empty list of strings; got an empty list.")
    rows = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"texts[{i}] must be a str; got {type(text).__name__} ({text!r}).")
        words = split_words(text)
        if len(words) + 2 > max_len:
            raise ValueError(f"texts[{i}] is {len(words) + 2} tokens long with <bos> and <eos> ({len(words)} "
                             f"words), more than max_len={max_len}; shorten the prompt to at most "
                             f"{max_len - 2} words or raise max_len: {text!r}.")
        ids = [WORD_TO_ID[BOS]] + [WORD_TO_ID.get(w, WORD_TO_ID[UNK]) for w in words] + [WORD_TO_ID[EOS]]
        rows.append(ids + [WORD_TO_ID[PAD]] * (max_len - len(ids)))
    return torch.tensor(rows, dtype=torch.long)


def detokenize(tokens: torch.Tensor) -> list[str]:
    """Texts back from :func:`tokenize`'s ids, for display: the words between ``<bos>`` and ``<eos>``
    joined by spaces (hyphens come back as spaces: "t-shirt" → "t shirt"; unknown words as ``<unk>``).

    Args:
        tokens: (B, L) or (L,) integer ids into :data:`VOCAB`.
    Returns:
        B strings (one for a 1-D input).
    """
    if not isinstance(tokens, torch.Tensor) or tokens.is_floating_point() or tokens.ndim not in (1, 2):
        raise ValueError(f"tokens must be an int64 tensor of shape (B, L) or (L,) from tokenize; got "
                         f"{getattr(tokens, 'shape', type(tokens).__name__)}.")
    rows = tokens.reshape(-1, tokens.shape[-1]).tolist()
    texts = []
    for row in rows:
        words = []
        for i in row:
            if not 0 <= i < len(VOCAB):
                raise ValueError(f"tokens hold id {i}, outside the vocabulary [0, {len(VOCAB) - 1}].")
            w = VOCAB[i]
            if w == EOS:
                break
            if w not in (BOS, PAD):
                words.append(w)
        texts.append(" ".join(words))
    return texts
