"""Captions: attributes measured on pixels, seeded captions, prompts and the word-level tokenizer."""
import re

import pytest
import torch

from course_utils import captions as C


def _square(side: int, level: float, size: int = 16, width: int | None = None) -> torch.Tensor:
    """(1, 1, size, size): background -1, a side×width block of intensity ``level`` in the middle."""
    width = side if width is None else width
    img = torch.full((1, 1, size, size), -1.0)
    top, left = (size - side) // 2, (size - width) // 2
    img[..., top:top + side, left:left + width] = level
    return img


def _batch(n: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.full((n, 1, 16, 16), -1.0)
    for i in range(n):                                      # random blocks of random size and brightness
        h, w = torch.randint(2, 16, (2,), generator=g).tolist()
        images[i, :, :h, :w] = torch.rand(1, generator=g) * 1.6 - 0.6
    labels = torch.randint(0, 10, (n,), generator=g)
    return images, labels


def test_measurements_by_hand():
    img = _square(8, 0.5)                                   # 8x8 block of 0.5 in a 16x16 frame
    a = C.measure_attributes(img)
    assert a["brightness"].shape == (1,) and a["brightness"].item() == pytest.approx(0.5)
    assert a["size"].item() == pytest.approx(64 / 256)
    assert a["aspect"].item() == pytest.approx(1.0)
    wide = C.measure_attributes(_square(4, 0.0, width=12))
    assert wide["aspect"].item() == pytest.approx(3.0) and wide["size"].item() == pytest.approx(48 / 256)
    empty = C.measure_attributes(torch.full((1, 1, 16, 16), -1.0))
    assert empty["size"].item() == 0 and empty["brightness"].item() == -1 and empty["aspect"].item() == 1


def test_attributes_move_the_right_way():
    bright_large = _square(14, 0.9)
    dim_small = _square(5, -0.5)
    a = C.measure_attributes(torch.cat([bright_large, dim_small]))
    assert a["brightness"][0] > a["brightness"][1] and a["size"][0] > a["size"][1]
    levels = C.attribute_levels(a)
    assert levels["brightness"].tolist() == [1, -1] and levels["size"].tolist() == [1, -1]
    tall_wide = C.attribute_levels(C.measure_attributes(torch.cat([_square(12, 0.1, width=5),
                                                                   _square(5, 0.1, width=12)])))
    assert tall_wide["aspect"].tolist() == [-1, 1]
    caps = C.make_captions(torch.cat([bright_large, dim_small]), torch.tensor([7, 8]),
                           generator=torch.Generator().manual_seed(0), mention=1.0)
    assert "large" in caps[0] and "light" in caps[0] and ("sneaker" in caps[0] or "trainer" in caps[0])
    assert "small" in caps[1] and "dark" in caps[1] and "bag" in caps[1]


def test_neutral_band_says_nothing():
    lo, hi = C.BRIGHTNESS_THRESHOLDS
    slo, shi = C.SIZE_THRESHOLDS
    side = round(((slo + shi) / 2 * 256) ** 0.5)            # a square whose area lies in the middle band
    img = _square(side, (lo + hi) / 2)
    assert slo < C.measure_attributes(img)["size"].item() < shi
    cap = C.make_captions(img, torch.tensor([3]), generator=torch.Generator().manual_seed(1))[0]
    assert not {"dark", "light", "small", "large", "tall", "wide"} & set(C.split_words(cap)), cap


def test_earned_words_are_named_at_the_mention_rate():
    """Each attribute the pixels earn is named with probability `mention`, independently: with ½, about half
    of 2,000 light large images say "light", half say "large", a quarter say neither (binomial bounds)."""
    n = 2000
    images = _square(14, 0.9).expand(n, -1, -1, -1).contiguous()        # large and light, aspect neutral
    g = torch.Generator().manual_seed(0)
    caps = C.make_captions(images, torch.full((n,), 8), generator=g)
    light = torch.tensor(["light" in C.split_words(c) for c in caps], dtype=torch.float)
    large = torch.tensor(["large" in C.split_words(c) for c in caps], dtype=torch.float)
    sd = (0.25 / n) ** 0.5
    assert abs(light.mean() - C.MENTION_PROBABILITY) < 4 * sd and abs(large.mean() - C.MENTION_PROBABILITY) < 4 * sd
    neither = ((1 - light) * (1 - large)).mean()
    assert abs(neither - 0.25) < 4 * (0.25 * 0.75 / n) ** 0.5
    assert all("light" in c and "large" in c
               for c in C.make_captions(images[:50], torch.full((50,), 8), generator=g, mention=1.0))
    assert all(not {"light", "large"} & set(C.split_words(c))
               for c in C.make_captions(images[:50], torch.full((50,), 8), generator=g, mention=0.0))
    for bad in (-0.1, 1.5, True, "half"):
        with pytest.raises(ValueError, match="mention"):
            C.make_captions(images[:2], torch.full((2,), 8), mention=bad)


def test_thresholds_are_quantiles():
    images, _ = _batch(300)
    th = C.attribute_thresholds(images)
    sizes = C.measure_attributes(images)["size"].sort().values
    assert th["size"][0] == pytest.approx(float(sizes[round(299 / 3)]), abs=0.02)     # linear interpolation
    levels = C.attribute_levels(C.measure_attributes(images), th)
    for v in levels.values():                               # each band about a third (ties aside)
        counts = torch.stack([(v == i).sum() for i in (-1, 0, 1)])
        assert counts.min() >= 60, counts
    for lo, hi in C.THRESHOLDS.values():
        assert lo < hi


def test_captions_deterministic_for_a_seed():
    images, labels = _batch()
    a = C.make_captions(images, labels, generator=torch.Generator().manual_seed(3))
    b = C.make_captions(images, labels, generator=torch.Generator().manual_seed(3))
    c = C.make_captions(images, labels, generator=torch.Generator().manual_seed(4))
    assert a == b and a != c and len(a) == 64


def test_every_caption_fits_and_is_in_the_vocabulary():
    images, labels = _batch(200, seed=5)
    caps = C.make_captions(images, labels, generator=torch.Generator().manual_seed(0))
    tokens = C.tokenize(caps, max_len=12)
    assert tokens.shape == (200, 12) and tokens.dtype == torch.int64
    assert not (tokens == C.WORD_TO_ID[C.UNK]).any()
    words = {w for cap in caps for w in re.split(r"[ \-]+", cap.lower())}
    assert words <= set(C.VOCAB)
    # the longest possible caption: every synonym with every attribute word still fits
    for names in C.CLASS_SYNONYMS:
        for name in names:
            longest = f"a small wide light-coloured {name}"
            assert len(C.split_words(longest)) + 2 <= 12
    assert set(C.SPECIAL_TOKENS) <= set(C.VOCAB) and C.VOCAB[0] == "<pad>" and len(set(C.VOCAB)) == len(C.VOCAB)


def test_every_synonym_and_template_is_used():
    images, labels = _batch(400, seed=7)
    caps = C.make_captions(images, labels, generator=torch.Generator().manual_seed(0))
    for names in C.CLASS_SYNONYMS:
        for name in names:
            assert any(name in c for c in caps), name
    assert any(c.startswith("a photo of") for c in caps) and any(c.startswith("an image of") for c in caps)
    assert any(c.split()[0] in ("a", "an") and "of" not in c.split()[:3] for c in caps)


def test_class_prompt():
    assert C.class_prompt(7) == "a photo of a sneaker"
    assert C.class_prompt(9) == "a photo of an ankle boot"
    assert C.class_prompt("T-shirt/top") == "a photo of a t-shirt"
    assert C.class_prompt("Ankle boot", "a {}") == "an ankle boot"
    assert C.class_prompt("handbag", "{}") == "handbag"


def test_tokenize_and_detokenize():
    t = C.tokenize(["A light-coloured T-shirt", "bag"], max_len=8)
    ids = C.WORD_TO_ID
    assert t[0].tolist() == [ids["<bos>"], ids["a"], ids["light"], ids["coloured"], ids["t"], ids["shirt"],
                             ids["<eos>"], ids["<pad>"]]
    assert t[1].tolist() == [ids["<bos>"], ids["bag"], ids["<eos>"]] + [0] * 5
    assert C.tokenize(["a zebra"])[0, 2] == ids["<unk>"]
    assert C.detokenize(t) == ["a light coloured t shirt", "bag"]
    assert C.detokenize(C.tokenize(["a photo of a zebra"])) == ["a photo of a <unk>"]
    assert C.tokenize(["w " * 10], max_len=12).shape == (1, 12)            # exactly max_len tokens fits


@pytest.mark.parametrize("texts, max_len, message", [
    ([], 12, "texts must be a non-empty list of strings; got an empty list."),
    (["a bag", 3], 12, "texts[1] must be a str; got int (3)."),
    ("a bag", 12, "texts must be a list of strings; got a single str. Wrap one prompt as ['a bag']."),
    (["a bag", "w " * 11], 12, "texts[1] is 13 tokens long with <bos> and <eos> (11 words), more than "
                               "max_len=12; shorten the prompt to at most 10 words or raise max_len"),
    (["a bag"], 1, "max_len must be an int >= 2 (room for <bos> and <eos>); got 1."),
])
def test_tokenize_errors(texts, max_len, message):
    with pytest.raises(ValueError) as err:
        C.tokenize(texts, max_len=max_len)
    assert str(err.value).startswith(message)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"images must be a float tensor of shape \(N, 1, H, W\)"):
        C.measure_attributes(torch.zeros(2, 16, 16))
    with pytest.raises(ValueError, match=r"images must lie in \[-1, 1\].*x \* 2 - 1"):
        C.measure_attributes(torch.full((1, 1, 16, 16), 255.0))
    with pytest.raises(ValueError, match=r"images must have one \(grey\) channel"):
        C.measure_attributes(torch.zeros(1, 3, 16, 16))
    images, _ = _batch(4)
    with pytest.raises(ValueError, match=r"labels must have shape \(B,\) = \(4,\), one class label per image; got \(3,\)"):
        C.make_captions(images, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must be an int class label or an int64 tensor of shape \(B,\); got torch.float32"):
        C.make_captions(images, torch.zeros(4))
    assert C.make_captions(images, 8, torch.Generator().manual_seed(0)) == \
        C.make_captions(images, [8] * 4, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\]"):
        C.make_captions(images, torch.tensor([0, 1, 2, 10]))
    with pytest.raises(ValueError, match="generator must be a torch.Generator or None"):
        C.make_captions(images, torch.zeros(4, dtype=torch.long), generator=0)
    with pytest.raises(ValueError, match=r"template must be a string with exactly one '\{\}'"):
        C.class_prompt(1, "a photo")
    with pytest.raises(ValueError, match=r"label_or_name must be a label in \[0, 9\] or a class name; got 10."):
        C.class_prompt(10)
    with pytest.raises(ValueError, match="label_or_name must be an int label"):
        C.class_prompt(True)
    with pytest.raises(ValueError, match="quantiles must be two numbers"):
        C.attribute_thresholds(images, (0.7, 0.3))
