"""Tiny CLIP: the symmetric InfoNCE loss by brute force, embeddings, temperature, zero-shot, training."""
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import require_data
from course_utils import captions as C
from course_utils import clip as K
from course_utils.data import FASHION_MNIST_CLASSES, load_fashion_mnist


def _emb(B=6, D=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (F.normalize(torch.randn(B, D, generator=g), dim=-1), F.normalize(torch.randn(B, D, generator=g), dim=-1))


def _brute_force_loss(img, txt, scale):
    B = img.shape[0]
    logits = [[scale * float(sum(img[i, d] * txt[j, d] for d in range(img.shape[1]))) for j in range(B)]
              for i in range(B)]
    rows = [-(logits[i][i] - math.log(sum(math.exp(logits[i][j]) for j in range(B)))) for i in range(B)]
    cols = [-(logits[j][j] - math.log(sum(math.exp(logits[i][j]) for i in range(B)))) for j in range(B)]
    return (sum(rows) / B + sum(cols) / B) / 2


def test_clip_loss_equals_brute_force():
    img, txt = _emb()
    for s in (0.0, 1.3, K.INIT_LOGIT_SCALE):
        assert K.clip_loss(img, txt, s).item() == pytest.approx(_brute_force_loss(img, txt, math.exp(s)), rel=1e-5)
    assert K.clip_loss(img, txt, torch.tensor(1.3)).item() == pytest.approx(_brute_force_loss(img, txt, math.exp(1.3)),
                                                                             rel=1e-5)


def test_clip_loss_is_symmetric_and_prefers_matched_pairs():
    img, txt = _emb()
    assert K.clip_loss(img, txt, 2.0).item() == pytest.approx(K.clip_loss(txt, img, 2.0).item(), rel=1e-6)
    # asymmetric logits: the row and column terms differ, the mean does not depend on the order
    matched = F.normalize(img + 0.1 * torch.randn(6, 5, generator=torch.Generator().manual_seed(1)), dim=-1)
    shuffled = matched[torch.tensor([1, 2, 3, 4, 5, 0])]
    assert K.clip_loss(img, matched, 3.0) < K.clip_loss(img, shuffled, 3.0) - 1.0
    assert K.clip_loss(img, img, 4.6).item() < 0.2                    # perfect pairs, sharp temperature


def test_logit_scale_init_and_clamp():
    torch.manual_seed(0)
    model = K.CLIP()
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert model.clamped_logit_scale().exp().item() == pytest.approx(100.0, rel=1e-5)
    img, txt = _emb()
    assert K.clip_loss(img, txt, 10.0).item() == pytest.approx(K.clip_loss(img, txt, math.log(100)).item())
    assert K.clip_loss(img, txt, torch.tensor(10.0)).item() == pytest.approx(_brute_force_loss(img, txt, 100.0),
                                                                             rel=1e-5)


def test_embeddings_unit_norm_and_shapes():
    torch.manual_seed(0)
    model = K.CLIP(K.CLIPConfig(embed_dim=32))
    images = torch.rand(3, 1, 16, 16) * 2 - 1
    e_i = model.encode_image(images)
    e_t = model.encode_text(["a photo of a bag", "a small dark sneaker", "a zebra"])
    assert e_i.shape == (3, 32) and e_t.shape == (3, 32)
    torch.testing.assert_close(e_i.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(e_t.norm(dim=-1), torch.ones(3))
    s = K.similarity(e_i, e_t[:2])
    assert s.shape == (3, 2)
    torch.testing.assert_close(s, e_i @ e_t[:2].T)


def test_text_features_embedding_is_encode_text_and_pools_at_the_first_eos():
    """The frozen-CLIP features the text U-Net reads give the same sentence vector as encode_text, and pooling
    picks each row's <eos> position (checked by an explicit loop over the rows)."""
    torch.manual_seed(0)
    model = K.CLIP().eval()
    prompts = ["a photo of a bag", "", "a small dark sneaker"]
    feats, mask, emb = model.text_features(prompts)
    torch.testing.assert_close(emb, model.encode_text(prompts))
    tokens = C.tokenize(prompts, model.config.max_len)
    pooled = model.text_encoder.pool(feats, tokens)
    eos = C.WORD_TO_ID[C.EOS]
    for b in range(len(prompts)):
        first = tokens[b].tolist().index(eos)
        torch.testing.assert_close(pooled[b], feats[b, first])
        assert bool(mask[b, first]) and not bool(mask[b, first + 1:].any())


def test_text_encoder_pools_at_eos_and_ignores_padding():
    torch.manual_seed(0)
    model = K.CLIP().eval()
    tokens = C.tokenize(["a small bag"], max_len=12)
    longer = C.tokenize(["a small bag"], max_len=8)                 # fewer pads
    torch.testing.assert_close(model.encode_tokens(tokens), model.encode_tokens(longer))
    assert not torch.allclose(model.encode_text(["a small bag"]), model.encode_text(["a large bag"]))


class _OneHotModel:
    """A hand-built "CLIP": image of class k (constant brightness level k) and every prompt naming class k
    map to the one-hot vector e_k."""

    names = [C.CLASS_SYNONYMS[k][0] for k in range(10)]

    def encode_image(self, images):
        k = ((images.mean(dim=(1, 2, 3)) + 1) * 4.5).round().long()      # brightness level → class
        return F.one_hot(k, 10).float()

    def encode_text(self, prompts):
        out = []
        for p in prompts:
            words = p.split()
            # the longest name found in the prompt ("shirt" is inside "t-shirt")
            k = max((k for k, n in enumerate(self.names) if n in p and (n != "shirt" or "t-shirt" not in p)),
                    key=lambda k: len(self.names[k]))
            vec = F.one_hot(torch.tensor(k), 10).float() + (0.3 if "photo" in words else 0.0)
            out.append(vec)
        return torch.stack(out)


def test_zero_shot_with_a_one_hot_model_is_exact():
    labels = torch.tensor([3, 0, 9, 6, 1, 7, 2, 8, 5, 4])
    images = (labels.float() / 4.5 - 1).reshape(-1, 1, 1, 1).expand(-1, 1, 16, 16).contiguous()
    model = _OneHotModel()
    pred = K.zero_shot_classify(model, images, FASHION_MNIST_CLASSES, ["a photo of a {}", "a {}", "a dark {}"])
    assert pred.dtype == torch.int64 and pred.tolist() == labels.tolist()
    # a permuted class list permutes the predictions
    names = list(FASHION_MNIST_CLASSES[::-1])
    assert K.zero_shot_classify(model, images, names).tolist() == (9 - labels).tolist()


def test_train_a_few_steps_lowers_the_loss_and_is_seeded():
    require_data()
    data = load_fashion_mnist(train=True, image_size=16, limit=256)
    x = data.images[:64]
    texts = C.make_captions(x, data.labels[:64], generator=torch.Generator().manual_seed(99))

    def fresh():
        torch.manual_seed(0)
        return K.CLIP()

    model = fresh()
    with torch.no_grad():
        before = K.clip_loss(*model(x, texts)).item()
    losses = K.train_clip(model, data, steps=25, batch_size=64, lr=2e-3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        after = K.clip_loss(*model(x, texts)).item()
    assert len(losses) == 25 and all(math.isfinite(v) for v in losses)
    assert after < before - 0.5, (before, after)
    assert 0.0 <= model.logit_scale.item() <= math.log(100)
    # seeded: the same run twice gives the same losses (3 steps; the lr schedule depends on the step count)
    short = [K.train_clip(fresh(), data, steps=3, batch_size=64, lr=2e-3, generator=torch.Generator().manual_seed(0))
             for _ in range(2)]
    assert short[0] == pytest.approx(short[1], rel=1e-5) and short[0][0] == pytest.approx(losses[0], rel=1e-5)


def test_train_clip_schedule_and_own_loss():
    """Linear warm-up then cosine decay to 0; a loss_fn given is the one that is called."""
    torch.manual_seed(0)
    data = (torch.rand(80, 1, 16, 16) * 2 - 1, torch.randint(0, 10, (80,)))
    calls = []

    def loss_fn(a, b, s):
        calls.append(a.shape)
        return K.clip_loss(a, b, s)

    model = K.CLIP()
    K.train_clip(model, data, steps=4, batch_size=8, generator=torch.Generator().manual_seed(0), loss_fn=loss_fn,
                 warmup_steps=2)
    assert calls == [torch.Size([8, 64])] * 4
    with pytest.raises(ValueError, match="loss_fn must be callable"):
        K.train_clip(model, data, steps=1, batch_size=8, loss_fn=3)
    with pytest.raises(ValueError, match="warmup_steps"):
        K.train_clip(model, data, steps=1, batch_size=8, warmup_steps=-1)


def test_bad_inputs():
    torch.manual_seed(0)
    model = K.CLIP()
    with pytest.raises(ValueError, match=r"images must have shape \(B, 1, 16, 16\).*got \(2, 1, 28, 28\)"):
        model.encode_image(torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"images must have shape \(B, 1, 16, 16\)"):
        model.encode_image(torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError, match=r"images must lie in \[-1, 1\]"):
        model.encode_image(torch.full((1, 1, 16, 16), 255.0))
    with pytest.raises(ValueError, match=r"images must be a float tensor"):
        model.encode_image(torch.zeros(1, 1, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="texts must be a non-empty list of strings; got an empty list."):
        model.encode_text([])
    with pytest.raises(ValueError, match=r"texts\[0\] is 14 tokens long"):
        model.encode_text(["a " * 12])
    img, txt = _emb()
    with pytest.raises(ValueError, match="image_emb and text_emb must hold matching pairs"):
        K.clip_loss(img, txt[:4], 1.0)
    with pytest.raises(ValueError, match="image_emb and text_emb must share the embedding width D"):
        K.similarity(img, txt[:, :3])
    with pytest.raises(ValueError, match="logit_scale must be a float or a 0-d float tensor"):
        K.clip_loss(img, txt, "hot")
    with pytest.raises(ValueError, match=r"CLIPConfig.width must be divisible by heads=4; got 30"):
        K.CLIPConfig(width=30)
    with pytest.raises(ValueError, match="class_names must be a non-empty list"):
        K.zero_shot_classify(model, torch.zeros(1, 1, 16, 16), [])
    data = (torch.zeros(8, 1, 16, 16), torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"batch_size must be an int in \[2, 8\]"):
        K.train_clip(model, data, steps=1, batch_size=16)
    with pytest.raises(ValueError, match="steps must be an int >= 1; got 0"):
        K.train_clip(model, data, steps=0, batch_size=4)
