"""Attention: agreement with torch's fused kernel, masks, permutation invariance, spatial blocks."""
import math

import pytest
import torch
import torch.nn.functional as F

from course_utils import attention as A


def _qkv(B=2, h=3, N=5, M=7, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, h, N, d, generator=g), torch.randn(B, h, M, d, generator=g),
            torch.randn(B, h, M, d, generator=g))


def test_matches_torch_sdpa():
    q, k, v = _qkv()
    torch.testing.assert_close(A.scaled_dot_product_attention(q, k, v), F.scaled_dot_product_attention(q, k, v))
    mask = torch.rand(2, 1, 5, 7, generator=torch.Generator().manual_seed(1)) > 0.4
    mask[..., 0] = True                                             # every query keeps a key
    torch.testing.assert_close(A.scaled_dot_product_attention(q, k, v, mask),
                               F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def test_brute_force_one_query():
    q, k, v = _qkv(B=1, h=1, N=1, M=4, d=3)
    scores = [sum(q[0, 0, 0, i] * k[0, 0, j, i] for i in range(3)) / math.sqrt(3) for j in range(4)]
    w = [math.exp(s) / sum(math.exp(t) for t in scores) for s in scores]
    expected = sum(w[j] * v[0, 0, j] for j in range(4))
    torch.testing.assert_close(A.scaled_dot_product_attention(q, k, v)[0, 0, 0], expected)


def test_rows_sum_to_one_and_mask_zeroes_padded_keys():
    q, k, _ = _qkv()
    keep = torch.tensor([[True] * 4 + [False] * 3, [True] * 7])     # (B, M) key padding
    w = A.attention_weights(q, k, keep[:, None, None, :])
    torch.testing.assert_close(w.sum(dim=-1), torch.ones(2, 3, 5))
    assert (w[0, :, :, 4:] == 0).all() and (w[0, :, :, :4] > 0).all() and (w[1] > 0).all()
    # the masked output equals attention over the unpadded keys alone
    q, k, v = _qkv()
    out = A.scaled_dot_product_attention(q, k, v, keep[:, None, None, :])
    torch.testing.assert_close(out[:1], A.scaled_dot_product_attention(q[:1], k[:1, :, :4], v[:1, :, :4]))


def test_key_permutation_leaves_output_unchanged():
    q, k, v = _qkv()
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(A.scaled_dot_product_attention(q, k, v),
                               A.scaled_dot_product_attention(q, k[:, :, perm], v[:, :, perm]))
    torch.manual_seed(0)
    mha = A.MultiHeadAttention(16, heads=4, context_dim=12)
    x, c = torch.randn(2, 5, 16), torch.randn(2, 7, 12)
    torch.testing.assert_close(mha(x, c), mha(x, c[:, perm]))


def test_self_attention_is_permutation_equivariant():
    torch.manual_seed(0)
    mha = A.MultiHeadAttention(16, heads=4)
    x = torch.randn(2, 6, 16)
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(mha(x)[:, perm], mha(x[:, perm]))
    # a different key set changes the output (the test above can fail)
    assert not torch.allclose(mha(x), mha(x, x.flip(1)[:, :3]))


def test_cross_attention_ignores_padded_context():
    torch.manual_seed(0)
    block = A.SpatialCrossAttention(16, context_dim=12, heads=4)
    x, c = torch.randn(2, 16, 4, 4), torch.randn(2, 6, 12)
    mask = torch.tensor([[True] * 3 + [False] * 3, [True] * 5 + [False]])
    c2 = c.clone()
    c2[0, 3:] = 100 * torch.randn(3, 12)                            # change only padded tokens
    c2[1, 5:] = -50.0
    out = block(x, c, mask)
    assert out.shape == (2, 16, 4, 4)
    torch.testing.assert_close(out, block(x, c2, mask))
    assert not torch.allclose(out, block(x, c2))                    # without the mask they do matter
    mha = A.MultiHeadAttention(8, heads=2, context_dim=12)
    y = torch.randn(2, 3, 8)
    torch.testing.assert_close(mha(y, c, mask), mha(y, c2, mask))


def test_heads_split_merge_round_trip():
    x = torch.randn(2, 5, 12)
    h = A.split_heads(x, 3)
    assert h.shape == (2, 3, 5, 4)
    torch.testing.assert_close(h[:, 1], x[..., 4:8])                # head 1 = channels 4..7
    torch.testing.assert_close(A.merge_heads(h), x)


def test_spatial_self_attention_matches_a_manual_loop():
    torch.manual_seed(0)
    block = A.SpatialSelfAttention(8, heads=2, groups=4)
    x = torch.randn(1, 8, 3, 3)
    out = block(x)
    seq = block.norm(x)[0].reshape(8, 9).T                          # (H·W, C), row-major positions
    attn = block.attn
    q, k, v = attn.to_q(seq), attn.to_k(seq), attn.to_v(seq)
    heads = []
    for i in range(2):
        sl = slice(4 * i, 4 * i + 4)
        heads.append(torch.softmax(q[:, sl] @ k[:, sl].T / 2.0, dim=-1) @ v[:, sl])
    expected = x[0] + attn.to_out(torch.cat(heads, dim=1)).T.reshape(8, 3, 3)
    torch.testing.assert_close(out[0], expected)


def test_errors():
    with pytest.raises(ValueError, match=r"MultiHeadAttention: dim=10 must be divisible by heads=4"):
        A.MultiHeadAttention(10, heads=4)
    with pytest.raises(ValueError, match=r"SpatialSelfAttention: channels=12 must be divisible by heads=5"):
        A.SpatialSelfAttention(12, heads=5)
    with pytest.raises(ValueError, match=r"channels=12 must be divisible by groups=8"):
        A.SpatialCrossAttention(12, context_dim=4, heads=4)
    block = A.SpatialCrossAttention(16, context_dim=12, heads=4)
    with pytest.raises(ValueError, match=r"context must have shape \(B=1, M, context_dim=12\); got torch.Size\(\[1, 3, 10\]\)"):
        block(torch.randn(1, 16, 2, 2), torch.randn(1, 3, 10))
    with pytest.raises(ValueError, match=r"x must be a float feature map of shape \(B, C=16, H, W\)"):
        block(torch.randn(1, 8, 2, 2), torch.randn(1, 3, 12))
    with pytest.raises(ValueError, match=r"mask must be a bool key-padding mask of shape \(B, M\) = \(1, 3\)"):
        block(torch.randn(1, 16, 2, 2), torch.randn(1, 3, 12), torch.ones(1, 3))
    with pytest.raises(ValueError, match="this MultiHeadAttention is cross-attention"):
        A.MultiHeadAttention(16, 4, context_dim=12)(torch.randn(1, 2, 16))
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="q and k must have the same head width d"):
        A.scaled_dot_product_attention(q, k[..., :4], v)
    with pytest.raises(ValueError, match="mask leaves some query with no key"):
        A.scaled_dot_product_attention(q, k, v, torch.zeros(2, 1, 1, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"does not broadcast to \(B, heads, N, M\)"):
        A.scaled_dot_product_attention(q, k, v, torch.ones(2, 6, dtype=torch.bool))
