"""course_utils.metrics: the shipped classifier, its hash check, class agreement and the Fréchet distance."""
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import require_data
from course_utils import metrics as M
from course_utils.data import load_fashion_mnist

ROOT = Path(__file__).resolve().parents[2]
ASSET = M.DEFAULT_CLASSIFIER_PATH
N_SUBSET = 2000     # images of the test split used by the metric tests


# ----------------------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def test_split():
    """A seeded 2000-image subset of the test split at 16, 28 and 32 px, {size: TensorDataset}.

    Skips locally when FashionMNIST cannot be found; fails in CI (see conftest.require_data).
    """
    require_data()
    idx = torch.randperm(10_000, generator=torch.Generator().manual_seed(0))[:N_SUBSET]
    out = {}
    for s in (16, 28, 32):
        d = load_fashion_mnist(train=False, image_size=s)
        assert len(d) == 10_000
        out[s] = type(d)(d.images[idx], d.labels[idx], d.classes)
    return out


@pytest.fixture(scope="module")
def real(test_split):
    """The 28 px subset: images (2000, 1, 28, 28) in [-1, 1], labels (2000,)."""
    return test_split[28].images, test_split[28].labels


@pytest.fixture(scope="module")
def clf():
    return M.load_classifier()


def _numpy_frechet(f1: np.ndarray, f2: np.ndarray) -> float:
    """Independent FD: sample statistics with numpy, Tr (S1^½ S2 S1^½)^½ through two symmetric eigh."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    w, v = np.linalg.eigh(s1)
    s1_half = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(s1_half @ s2 @ s1_half), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


class FirstRow(nn.Module):
    """A tiny fixed 'feature extractor': the first row of a (N, 1, 4, 4) image, 4 features."""

    num_features = 4

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()), requires_grad=False)   # gives the module a device

    def features(self, x):
        return x[:, 0, 0, :].double()


def _as_images(feats: torch.Tensor) -> torch.Tensor:
    """(N, 4) features -> (N, 1, 4, 4) images whose first row holds them."""
    x = torch.zeros(len(feats), 1, 4, 4, dtype=torch.float64)
    x[:, 0, 0, :] = feats
    return x


# ----------------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [16, 28, 32])
def test_classifier_shapes(size):
    model = M.FashionClassifier(feature_dim=64).eval()
    x = torch.rand(3, 1, size, size) * 2 - 1
    assert model(x).shape == (3, 10)
    assert model.features(x).shape == (3, 64) and model.num_features == 64


@pytest.mark.parametrize("bad", [torch.zeros(2, 28, 28), torch.zeros(2, 3, 28, 28),
                                 torch.zeros(2, 1, 28, 28, dtype=torch.uint8), np.zeros((2, 1, 28, 28))])
def test_classifier_rejects_bad_input(bad):
    with pytest.raises(ValueError, match=r"\(B, 1, S, S\)|float"):
        M.FashionClassifier().eval()(bad)


# ----------------------------------------------------------------------------------------------
# Shipped weights and the hash check
# ----------------------------------------------------------------------------------------------
def test_shipped_files_are_consistent():
    assert ASSET.stat().st_size < 2_000_000
    side = ASSET.with_name(ASSET.name + ".sha256").read_text().split()
    assert side == [hashlib.sha256(ASSET.read_bytes()).hexdigest(), ASSET.name]
    record = json.loads(ASSET.with_suffix(".json").read_text())
    for key in ("command", "seed", "epochs", "wall_time_s", "torch_version", "date", "test_accuracy"):
        assert key in record
    assert record["sha256"] == side[0]
    assert record["command"].startswith("python scripts/train_classifier.py")


@pytest.mark.slow                    # ≈ 17 s per size: out of ./course.sh test --fast
@pytest.mark.parametrize("size", [16, 28, 32])
def test_shipped_classifier_accuracy(clf, test_split, size):
    data = test_split[size]
    assert not clf.training
    acc = (M.classify(data.images, clf) == data.labels).double().mean().item()
    assert acc >= 0.90, f"accuracy on {N_SUBSET} test images at {size} px is {acc:.4f}"
    # the training record (full 10 000-image split) agrees within the subset's sampling error
    recorded = json.loads(ASSET.with_suffix(".json").read_text())["test_accuracy"][f"{size}px"]
    assert recorded >= 0.90 and acc == pytest.approx(recorded, abs=0.03)


def test_hash_helpers(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"diffusion" * 1000)
    side = M.write_sha256(f)
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    assert side == tmp_path / "w.bin.sha256"
    assert side.read_text() == f"{digest}  w.bin\n"
    assert M.sha256_file(f) == digest == M.verify_sha256(f)


def test_tampered_weights_are_refused(tmp_path, clf):
    path = tmp_path / ASSET.name
    shutil.copy(ASSET, path)
    shutil.copy(ASSET.with_name(ASSET.name + ".sha256"), tmp_path)
    M.load_classifier(path)                                   # the intact copy loads
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256") as err:
        M.load_classifier(path)
    assert "changed or corrupted" in str(err.value) and "scripts/train_classifier.py" in str(err.value)


def test_missing_sidecar_is_refused(tmp_path):
    path = tmp_path / ASSET.name
    shutil.copy(ASSET, path)
    with pytest.raises(ValueError, match="sha256 sidecar"):
        M.load_classifier(path)


def test_default_classifier_is_cached():
    images = torch.zeros(8, 1, 28, 28)
    M.classify(images)
    misses = M._cached_default_classifier.cache_info().misses
    M.classify(images)
    M.class_agreement(images, torch.zeros(8, dtype=torch.int64))
    assert M._cached_default_classifier.cache_info().misses == misses


# ----------------------------------------------------------------------------------------------
# Class agreement
# ----------------------------------------------------------------------------------------------
@pytest.mark.slow                    # ≈ 37 s: out of ./course.sh test --fast
def test_class_agreement(clf, real):
    images, labels = real
    own = M.classify(images, clf)
    assert own.dtype == torch.int64 and own.shape == (N_SUBSET,)
    assert M.class_agreement(images, own, clf) == 1.0
    random_labels = torch.randint(0, 10, (N_SUBSET,), generator=torch.Generator().manual_seed(1))
    assert M.class_agreement(images, random_labels, clf) == pytest.approx(0.1, abs=0.03)
    # per class: one entry per class present, and the label-weighted mean is the overall agreement
    per_class = M.class_agreement_per_class(images, labels, clf)
    assert set(per_class) == set(labels.unique().tolist())
    counts = torch.bincount(labels, minlength=10)
    overall = sum(per_class[c] * counts[c].item() for c in per_class) / N_SUBSET
    assert overall == pytest.approx((own == labels).double().mean().item(), abs=1e-12)
    assert overall >= 0.90 and min(per_class.values()) >= 0.5      # "Shirt" is the hardest class
    assert M.class_agreement_per_class(images[:4], own[:4], clf) == {c: 1.0 for c in own[:4].tolist()}


@pytest.mark.parametrize("labels, match", [
    (torch.zeros(3, dtype=torch.int64), "batch size"),
    (torch.full((4,), 10), r"\[0, 9\]"),
    (torch.zeros(4), "integer"),
    (torch.zeros(4, 1, dtype=torch.int64), "1-D"),
])
def test_class_agreement_rejects_bad_labels(labels, match):
    images = torch.zeros(4, 1, 28, 28)
    with pytest.raises(ValueError, match=match):
        M.class_agreement(images, labels, M.FashionClassifier().eval())


def test_classify_rejects_bad_arguments():
    model = M.FashionClassifier().eval()
    with pytest.raises(ValueError, match="batch_size"):
        M.classify(torch.zeros(2, 1, 28, 28), model, batch_size=0)
    with pytest.raises(ValueError, match="training mode"):
        M.classify(torch.zeros(2, 1, 28, 28), M.FashionClassifier().train())
    with pytest.raises(ValueError, match="classifier"):
        M.classify(torch.zeros(2, 1, 28, 28), nn.Linear(2, 2))


# ----------------------------------------------------------------------------------------------
# Fréchet distance
# ----------------------------------------------------------------------------------------------
@pytest.mark.slow                    # ≈ 60 s: out of ./course.sh test --fast
def test_frechet_distance_orders_real_halves_noise_and_shuffled(clf, real):
    images = real[0]
    g = torch.Generator().manual_seed(0)
    a, b = images[:N_SUBSET // 2], images[N_SUBSET // 2:]
    noise = (torch.randn(a.shape, generator=g) * 0.5).clamp(-1, 1)
    shuffled = a.flatten(1)[:, torch.randperm(28 * 28, generator=g)].view_as(a)   # same pixel histogram
    same = M.frechet_distance(a, a, clf)
    halves = M.frechet_distance(a, b, clf)
    vs_noise = M.frechet_distance(a, noise, clf)
    vs_shuffled = M.frechet_distance(a, shuffled, clf)
    scale = clf.features(a).double().var(0).sum().item()      # Tr Σ of the real features
    assert abs(same) < 1e-6 * scale
    assert 0 < halves < 0.1 * vs_shuffled and halves < 0.1 * vs_noise
    # a different resolution of the same images stays close as well (the classifier resizes to 28 px)
    a16 = torch.nn.functional.interpolate(a, size=(16, 16), mode="bilinear", antialias=True).clamp(-1, 1)
    assert M.frechet_distance(a, a16, clf) < 0.2 * vs_shuffled


def test_frechet_distance_matches_numpy_on_classifier_features(clf, real):
    a, b = real[0][:500], real[0][500:1000]
    with torch.inference_mode():
        fa, fb = clf.features(a).double().numpy(), clf.features(b).double().numpy()
    expected = _numpy_frechet(fa, fb)
    assert M.frechet_distance(a, b, clf) == pytest.approx(expected, rel=1e-6, abs=1e-8 * np.trace(np.cov(fa.T)))


def test_frechet_distances_of_several_sets_match_numpy_each(clf, real):
    """The sweep helper computes the real features once; each distance is still numpy's on that pair."""
    a, sets = real[0][:400], [real[0][400:600], real[0][600:800].flip(-1), torch.rand(200, 1, 28, 28) * 2 - 1]
    with torch.inference_mode():
        fa = clf.features(a).double().numpy()
        expected = [_numpy_frechet(fa, clf.features(x).double().numpy()) for x in sets]
    got = M.frechet_distances(a, sets, clf)
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert got[0] < got[1] < got[2]                       # halves < flipped < noise: the sets were not mixed up
    with pytest.raises(ValueError, match="fake_sets must be a list"):
        M.frechet_distances(a, sets[0], clf)
    with pytest.raises(ValueError, match="fake_sets is empty"):
        M.frechet_distances(a, [], clf)
    with pytest.raises(ValueError, match=r"fake_sets\[1\] needs at least 2 images"):
        M.frechet_distances(a, [sets[0], sets[0][:1]], clf)


def test_frechet_distance_on_known_gaussians():
    """Features drawn from N(mu1, diag s1) and N(mu2, diag s2), through a tiny fixed extractor."""
    g = torch.Generator().manual_seed(0)
    mu1, mu2 = torch.tensor([0.0, 1.0, -1.0, 2.0]), torch.tensor([0.5, 1.0, 0.0, 2.0])
    s1, s2 = torch.tensor([1.0, 0.5, 2.0, 1.0]), torch.tensor([0.25, 0.5, 1.0, 3.0])
    n = 20_000
    f1 = (mu1 + s1.sqrt() * torch.randn(n, 4, generator=g)).double()
    f2 = (mu2 + s2.sqrt() * torch.randn(n, 4, generator=g)).double()
    fd = M.frechet_distance(_as_images(f1), _as_images(f2), FirstRow().eval())
    # exactly the FD of the two samples' own statistics …
    assert fd == pytest.approx(_numpy_frechet(f1.numpy(), f2.numpy()), rel=1e-9)
    # … and close to the closed form of the two populations
    closed = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * (s1 * s2).sqrt()).sum()
    assert fd == pytest.approx(closed.item(), rel=0.05)


def test_frechet_from_features_closed_forms():
    g = torch.Generator().manual_seed(0)
    d = 6
    mu1, mu2 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    s1 = torch.rand(d, generator=g, dtype=torch.float64) + 0.1
    s2 = torch.rand(d, generator=g, dtype=torch.float64) + 0.1
    closed = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * (s1 * s2).sqrt()).sum()
    assert M._frechet_from_features(mu1, torch.diag(s1), mu2, torch.diag(s2)) == pytest.approx(closed.item(), rel=1e-10)
    # covariances that share an eigenbasis Q (commute): the same formula on their eigenvalues
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    sig1, sig2 = q @ torch.diag(s1) @ q.T, q @ torch.diag(s2) @ q.T
    assert M._frechet_from_features(mu1, sig1, mu2, sig2) == pytest.approx(closed.item(), rel=1e-9)
    assert M._frechet_from_features(mu1, sig1, mu1, sig1) == pytest.approx(0.0, abs=1e-10)
    # a general pair agrees with the numpy route through symmetric square roots
    a, b = torch.randn(d, d, generator=g, dtype=torch.float64), torch.randn(d, d, generator=g, dtype=torch.float64)
    sa, sb = a @ a.T, b @ b.T
    w, v = np.linalg.eigh(sa.numpy())
    half = (v * np.sqrt(w)) @ v.T
    tr_sqrt = np.sqrt(np.linalg.eigvalsh(half @ sb.numpy() @ half)).sum()
    expected = ((mu1 - mu2) ** 2).sum().item() + np.trace(sa.numpy() + sb.numpy()) - 2 * tr_sqrt
    assert M._frechet_from_features(mu1, sa, mu2, sb) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("real_x, fake_x, match", [
    (torch.zeros(1, 1, 28, 28), torch.zeros(5, 1, 28, 28), "at least 2"),
    (torch.zeros(5, 1, 28, 28), torch.zeros(1, 1, 16, 16), "at least 2"),
    (torch.zeros(5, 3, 28, 28), torch.zeros(5, 1, 28, 28), r"\(B, 1, S, S\)"),
    (torch.zeros(5, 1, 28, 28), torch.zeros(5, 28, 28), r"\(B, 1, S, S\)"),
    (torch.zeros(5, 1, 28, 28, dtype=torch.uint8), torch.zeros(5, 1, 28, 28), "float"),
])
def test_frechet_distance_rejects_bad_inputs(real_x, fake_x, match):
    with pytest.raises(ValueError, match=match):
        M.frechet_distance(real_x, fake_x, M.FashionClassifier().eval())


def test_frechet_from_features_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="mu"):
        M._frechet_from_features(torch.zeros(3), torch.eye(3), torch.zeros(2), torch.eye(2))


# ----------------------------------------------------------------------------------------------
# The training script
# ----------------------------------------------------------------------------------------------
def test_train_script_help():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_classifier.py"), "--help"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    for option in ("--epochs", "--seed", "--out"):
        assert option in out
