"""course_utils.text2image and the shipped lesson 08 models (clip16, text16): the text U-Net, its training
conditions, guided sampling, the generate() contract, and the figures the issue asks for, recomputed."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from course_utils import captions as C
from course_utils import text2image as T
from course_utils.checkpoints import load_module_payload, save_module
from course_utils.clip import CLIP, CLIPConfig, load_clip, retrieval_recall
from course_utils.diffusion import GaussianDiffusion
from course_utils.pretrained import ASSETS, checkpoint_path
from course_utils.schedules import linear_betas


def _small(seed=0):
    torch.manual_seed(seed)
    clip = CLIP(CLIPConfig(embed_dim=16, image_channels=(8, 16), width=16, text_layers=1, heads=2)).eval()
    cfg = T.TextUNetConfig(unet=T.UNetConfig(channels=(8, 16), attention=True), context_dim=16, embed_dim=16, heads=2)
    model = T.TextUNet(cfg).eval()
    torch.nn.init.normal_(model.conv_out.weight, std=0.2)          # zero-initialised: re-draw so ε ≠ 0
    return clip, model


def test_text_unet_reads_both_paths():
    clip, model = _small()
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([10, 500])
    a = T.encode_prompts(clip, ["a photo of a sneaker", "a dark bag"])
    b = T.encode_prompts(clip, ["a photo of a dress", "a light coat"])
    with torch.no_grad():
        base = model(x, t, a)
        assert base.shape == x.shape
        # change only the tokens, then only the pooled embedding: each changes ε
        assert not torch.allclose(base, model(x, t, a._replace(tokens=b.tokens, mask=b.mask)))
        assert not torch.allclose(base, model(x, t, a._replace(embedding=b.embedding)))
        # the padding is masked: changing the features at masked positions changes nothing
        tok = a.tokens.clone()
        tok[~a.mask] = 123.0
        assert torch.allclose(base, model(x, t, a._replace(tokens=tok)), atol=1e-6)


def test_text_unet_bad_input():
    clip, model = _small()
    x = torch.randn(2, 1, 16, 16)
    with pytest.raises(ValueError, match="cond must be a TextCondition"):
        model(x, 3, torch.zeros(2, 16))
    with pytest.raises(ValueError, match="needs a condition"):
        model(x, 3)
    with pytest.raises(ValueError, match="batch of 2"):
        model(x, 3, T.encode_prompts(clip, ["a bag"]))
    with pytest.raises(ValueError, match="at least one of cross_attention and pooled"):
        T.TextUNetConfig(cross_attention=False, pooled=False)
    with pytest.raises(ValueError, match="num_classes=None"):
        T.TextUNetConfig(unet=T.UNetConfig(channels=(8, 16), num_classes=10))


@pytest.mark.parametrize("prompts, match", [
    ([], "non-empty list"), ("a bag", "single str"), (["a bag", 3], r"prompts\[1\] must be a str"),
    (["a photo of a " + "very " * 12 + "dark bag"], "tokens long"),
])
def test_prompts_bad_input(prompts, match):
    clip, _ = _small()
    with pytest.raises(ValueError, match=match):
        T.encode_prompts(clip, prompts)


def test_training_conditions_rates():
    """The empty prompt with probability p_uncond, the image embedding with probability p_image among the
    rest: both within five binomial standard deviations over 6000 draws."""
    n = 6000
    images = torch.rand(n, 1, 16, 16) * 2 - 1
    labels = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(1))
    texts, use_image = T.draw_training_conditions(images, labels, 0.1, 0.2, torch.Generator().manual_seed(0))
    empty = torch.tensor([t == "" for t in texts])
    assert abs(float(empty.float().mean()) - 0.1) < 5 * (0.1 * 0.9 / n) ** 0.5
    share = float(use_image.float().mean())
    assert abs(share - 0.9 * 0.2) < 5 * (0.18 * 0.82 / n) ** 0.5
    assert not bool((empty & use_image).any())
    again = T.draw_training_conditions(images, labels, 0.1, 0.2, torch.Generator().manual_seed(0))
    assert again[0] == texts and torch.equal(again[1], use_image)
    with pytest.raises(ValueError, match="p_uncond"):
        T.make_text_loss(None, p_uncond=1.0)


def test_guided_model_is_the_cfg_formula():
    clip, model = _small()
    x, t = torch.randn(3, 1, 16, 16), torch.tensor([5, 50, 900])
    cond = T.encode_prompts(clip, ["a bag", "a dark sneaker", "a photo of a coat"])
    null = T.encode_prompts(clip, [""] * 3)
    with torch.no_grad():
        c, u = model(x, t, cond), model(x, t, null)
        for w in (0.0, -1.0, 2.5):
            assert torch.allclose(T.guided_text_model(model, cond, null, w)(x, t), c + w * (c - u), atol=1e-5)


def test_sample_is_seeded_and_checks_x_T():
    clip, model = _small()
    d = GaussianDiffusion(linear_betas(100))
    cond, null = T.encode_prompts(clip, ["a bag", "a coat"]), T.encode_prompts(clip, ["", ""])
    a, b = T.sample(model, d, cond, null, 2.0, 4, seed=3), T.sample(model, d, cond, null, 2.0, 4, seed=3)
    assert a.shape == (2, 1, 16, 16) and torch.equal(a, b) and float(a.abs().max()) <= 1.0
    assert not torch.equal(a, T.sample(model, d, cond, null, 2.0, 4, seed=4))
    with pytest.raises(ValueError, match="x_T must be a tensor of shape"):
        T.sample(model, d, cond, null, 2.0, 4, x_T=torch.randn(3, 1, 16, 16))


def test_save_module_kind_is_checked(tmp_path):
    clip, model = _small()
    path = save_module(tmp_path / "m.pt", "TextUNet", model, model.text_config.to_dict(), {"a": 1})
    assert load_module_payload(path, "TextUNet")["meta"] == {"a": 1}
    with pytest.raises(ValueError, match="not a CLIP checkpoint"):
        load_module_payload(path, "CLIP")
    rebuilt = T.TextUNet(load_module_payload(path, "TextUNet")["config"])
    rebuilt.load_state_dict(load_module_payload(path, "TextUNet")["state_dict"])


# ---------------------------------------------------------------------------------------------- shipped models
def test_load_clip_contract(tmp_path):
    clip = load_clip()
    assert not clip.training and not any(p.requires_grad for p in clip.parameters())
    e_t = clip.encode_text(["a photo of a sneaker", "a bag"])
    e_i = clip.encode_image(torch.rand(3, 1, 16, 16) * 2 - 1)
    assert e_t.shape == (2, 64) and e_i.shape == (3, 64)
    assert torch.allclose(e_t.norm(dim=1), torch.ones(2), atol=1e-5)
    assert torch.allclose(e_i.norm(dim=1), torch.ones(3), atol=1e-5)
    with pytest.raises(ValueError, match=r"shape \(B, 1, 16, 16\)"):
        clip.encode_image(torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match="non-empty list"):
        clip.encode_text([])
    # a changed file is refused before it is unpickled
    bad = tmp_path / "clip16.pt"
    shutil.copy(checkpoint_path("clip16"), bad)
    shutil.copy(str(checkpoint_path("clip16")) + ".sha256", str(bad) + ".sha256")
    with open(bad, "ab") as f:
        f.write(b"x")
    with pytest.raises(ValueError, match="does not match its sha256"):
        load_clip(path=bad)


def test_clip16_zero_shot_and_retrieval_recomputed(fashion_data):
    """The record's zero-shot figure (≥ 80 % on the 10,000 test images) is recomputed here on 2,000 of them
    with an independent loop (not zero_shot_classify), and recall@5 beats chance by far."""
    rec = json.loads((ASSETS / "clip16.json").read_text())["evaluation"]
    assert rec["zero_shot_accuracy"] >= 0.80 and rec["test_images"] == 10000
    from course_utils.data import load_fashion_mnist

    clip = load_clip()
    test = load_fashion_mnist(train=False, image_size=16, limit=2000)
    x, y = test.images, test.labels
    with torch.no_grad():
        classes = torch.cat([clip.encode_text([C.class_prompt(k)]) for k in range(10)])   # (10, 64)
        pred = (clip.encode_image(x) @ classes.T).argmax(1)
    acc = float((pred == y).float().mean())
    assert acc >= 0.77, acc
    caps = C.make_captions(x[:500], y[:500], generator=torch.Generator().manual_seed(0))
    r = retrieval_recall(clip, x[:500], caps)
    assert r["recall@5"] > 20 * 5 / 500, r


def test_generate_contract():
    x = T.generate(["a photo of a sneaker", "a dark bag", ""], w=2.0, num_steps=4, seed=0)
    assert x.shape == (3, 1, 16, 16) and x.dtype == torch.float32
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    assert torch.equal(x, T.generate(["a photo of a sneaker", "a dark bag", ""], w=2.0, num_steps=4, seed=0))
    assert not torch.equal(x, T.generate(["a photo of a sneaker", "a dark bag", ""], w=2.0, num_steps=4, seed=1))
    for bad, match in (([], "non-empty list"), ([7], "must be a str"),
                       (["a " * 11 + "bag"], "tokens long"), ("a bag", "single str")):
        with pytest.raises(ValueError, match=match):
            T.generate(bad, num_steps=2)
    with pytest.raises(ValueError, match="num_steps"):
        T.generate(["a bag"], num_steps=0)
    with pytest.raises(ValueError, match="w must be a finite float"):
        T.generate(["a bag"], w="2")


def test_text16_record_meets_the_figures():
    """The recorded evaluation of the shipped text16 (computed right after the build): the class named in "a photo
    of a {class}" is recognised in ≥ 90 % of the samples at the lesson's w (the issue's goal), and so is the class
    of the prompts naming its usual attribute bands; guidance raises the agreement of bare class prompts; same-noise
    attribute pairs are ordered as the words say."""
    meta = json.loads((ASSETS / "text16.json").read_text())
    assert meta["clip_sha256"] == (ASSETS / "clip16.pt.sha256").read_text().split()[0]
    assert meta["ema_start_removed"] == pytest.approx(T.TEXT16_RECIPE["ema_decay"] ** (T.TEXT16_RECIPE["steps"] - 1),
                                                      rel=1e-3)
    per_w = meta["evaluation"]["per_w"]
    row = per_w[str(T.LESSON_W)]
    assert row["class_agreement_typical_prompt"] >= 0.90, row
    assert row["class_agreement"] >= 0.90, row
    assert per_w["0.0"]["class_agreement"] < row["class_agreement"] < per_w["5.0"]["class_agreement"]
    assert row["brightness_pairs_obeyed"] >= 0.90 and row["size_pairs_obeyed"] >= 0.90, row
    assert len(meta["evaluation"]["typical_prompts"]) == 10


def test_typical_prompts_name_the_usual_bands(fashion_data):
    prompts = T.typical_prompts()
    assert len(prompts) == 10 and prompts[7] == "a photo of a small wide sneaker"
    assert all(C.class_prompt(k).split()[-1] == p.split()[-1] for k, p in enumerate(prompts))


def test_text16_follows_typical_prompts_recomputed(fashion_data):
    """Class agreement recomputed on fresh samples (another seed than the record's), for the typical and for the
    bare class prompts: ≥ 85 % of 100 each (the record's 300 samples reach more; 100 leave a few points of noise)."""
    from course_utils.metrics import class_agreement

    prompts = T.typical_prompts()
    y = torch.arange(10).repeat_interleave(10)
    x = T.generate([prompts[int(k)] for k in y] + [C.class_prompt(int(k)) for k in y], w=T.LESSON_W, num_steps=20,
                   seed=11)
    typical, bare = class_agreement(x[:100], y), class_agreement(x[100:], y)
    assert typical >= 0.85 and bare >= 0.85, (typical, bare)


def test_evaluate_text2image_at_tiny_sizes(fashion_data):
    """The evaluation's rows at tiny sizes: every w gets agreement and Fréchet distance, only the pair ws get the
    typical-prompt agreement and the attribute pairs; every share lies in [0, 1]; the same seed repeats it."""
    model, diffusion, clip, _ = T.load_text2image()
    kw = dict(per_class=1, ws=(0.0, 2.0), pair_ws=(2.0,), pairs_per_class=1, num_steps=2)
    r = T.evaluate_text2image(model, diffusion, clip, **kw)
    assert r["samples_per_w"] == 10 and r["pairs_per_attribute"] == 10 and len(r["typical_prompts"]) == 10
    assert set(r["per_w"]["0.0"]) == {"class_agreement", "frechet_distance"}
    assert set(r["per_w"]["2.0"]) == {"class_agreement", "frechet_distance", "class_agreement_typical_prompt",
                                      "brightness_pairs_obeyed", "size_pairs_obeyed"}
    for row in r["per_w"].values():
        assert row["frechet_distance"] > 0
        assert all(0 <= v <= 1 for k, v in row.items() if k != "frechet_distance"), row
    assert T.evaluate_text2image(model, diffusion, clip, **kw) == r
