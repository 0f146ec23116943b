"""Sample-quality metrics built on a small FashionMNIST classifier shipped with the course.

* :class:`FashionClassifier`: a small CNN; it resizes any (B, 1, S, S) input in [-1, 1] to 28×28, so
  16, 28 and 32 px samples are scored by the same network. Its 128-d penultimate activations
  (:meth:`FashionClassifier.features`) play the role Inception-v3's pool features play for FID.
* :func:`load_classifier`: the shipped weights (``course_utils/assets/fashion_classifier.pt``), loaded with
  ``torch.load(weights_only=True)`` only after their sha256 matches the ``.sha256`` sidecar.
* :func:`class_agreement`: how often a class-conditional sample is classified as the class it was asked
  for (for classifier-free guidance sweeps).
* :func:`frechet_distance`: the Fréchet distance between Gaussians fitted to classifier features of two
  image sets (FID with the course classifier instead of Inception; values are *not* comparable with
  published FID numbers, only with each other).
* :func:`sha256_file`, :func:`write_sha256`, :func:`verify_sha256`: the hashing helpers of
  :mod:`course_utils.checkpoints`, re-exported here.

Regenerate the shipped weights with ``python scripts/train_classifier.py`` (a few minutes on a CPU).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import load_verified, sha256_file, verify_sha256, write_sha256  # re-exported: the hashing helpers
from .validation import is_int

__all__ = ["FashionClassifier", "load_classifier", "classify", "class_agreement",
           "class_agreement_per_class", "frechet_distance", "frechet_distances", "sha256_file", "write_sha256",
           "verify_sha256", "DEFAULT_CLASSIFIER_PATH", "TRAIN_CLASSIFIER_COMMAND"]

DEFAULT_CLASSIFIER_PATH = Path(__file__).resolve().parent / "assets" / "fashion_classifier.pt"
TRAIN_CLASSIFIER_COMMAND = "python scripts/train_classifier.py"
NATIVE_SIZE = 28           # FashionMNIST's own resolution; every input is resized to it
NUM_CLASSES = 10


# ----------------------------------------------------------------------------------------------
# The classifier
# ----------------------------------------------------------------------------------------------
def _conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def _check_images(x, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B, 1, S, S); got {type(x).__name__}.")
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"{name} must have shape (B, 1, S, S) (a batch of grey images); got {tuple(x.shape)}.")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [-1, 1]; got dtype {x.dtype} "
                         "(convert uint8 images with x.float() / 127.5 - 1).")
    if x.shape[0] == 0 or x.shape[2] < 4 or x.shape[3] < 4:
        raise ValueError(f"{name} must hold at least one image of at least 4×4 pixels; got {tuple(x.shape)}.")


class FashionClassifier(nn.Module):
    """A small CNN for FashionMNIST that accepts 16, 28 or 32 px input.

    Layout (every conv 3×3, BatchNorm, ReLU), on the 28×28 grid the input is resized to:
    conv 1→c0, pool → 14×14; conv c0→c1, conv c1→c1, pool → 7×7; conv c1→c2, pool → 3×3;
    flatten, Linear → ``feature_dim``, BatchNorm1d, ReLU (the *features*); Linear → 10 logits.

    Args:
        channels: (c0, c1, c2) widths of the three stages.
        feature_dim: size of the penultimate layer returned by :meth:`features`.
    Attributes:
        num_features: ``feature_dim`` (the name torchmetrics looks for).
    """

    def __init__(self, channels: tuple[int, int, int] = (32, 64, 128), feature_dim: int = 128):
        super().__init__()
        c0, c1, c2 = channels
        self.channels = tuple(int(c) for c in channels)
        self.num_features = int(feature_dim)
        self.body = nn.Sequential(
            *_conv_block(1, c0), nn.MaxPool2d(2),                          # (B, c0, 14, 14)
            *_conv_block(c0, c1), *_conv_block(c1, c1), nn.MaxPool2d(2),   # (B, c1, 7, 7)
            *_conv_block(c1, c2), nn.MaxPool2d(2),                         # (B, c2, 3, 3)
            nn.Flatten(),
            nn.Linear(c2 * 9, feature_dim, bias=False), nn.BatchNorm1d(feature_dim), nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(feature_dim, NUM_CLASSES)

    def config(self) -> dict:
        """The constructor arguments, as plain JSON-able values (stored beside the weights)."""
        return {"channels": list(self.channels), "feature_dim": self.num_features}

    @staticmethod
    def resize(x: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S') -> (B, 1, 28, 28): bilinear with antialiasing (a no-op at 28 px)."""
        if x.shape[-2:] == (NATIVE_SIZE, NATIVE_SIZE):
            return x
        return F.interpolate(x, size=(NATIVE_SIZE, NATIVE_SIZE), mode="bilinear", antialias=True,
                             align_corners=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations.

        Args:
            x: (B, 1, S, S) float in [-1, 1], any S ≥ 4 (16, 28, 32 in the course).
        Returns:
            (B, feature_dim) float, non-negative (after the ReLU).
        Raises:
            ValueError: x is not a 4-D float tensor with one channel.
        """
        _check_images(x)
        x = x.to(next(self.parameters()).dtype)
        return self.body(self.resize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits: (B, 1, S, S) in [-1, 1] -> (B, 10)."""
        return self.head(self.features(x))


def load_classifier(path: str | os.PathLike | None = None, device: str | torch.device = "cpu"
                    ) -> FashionClassifier:
    """Load classifier weights after checking their sha256 sidecar.

    Args:
        path: a ``.pt`` written by ``scripts/train_classifier.py``; ``None`` means the shipped
            ``course_utils/assets/fashion_classifier.pt``.
        device: where the model goes ("cpu", "cuda", "auto", …).
    Returns:
        a fresh :class:`FashionClassifier` in eval mode (the metric functions use a cached copy of the
        shipped one instead, see ``classifier=None``).
    Raises:
        ValueError: the file does not match its ``.sha256`` sidecar, the sidecar is missing, or the file
            is not a classifier checkpoint.
    """
    from .utils import get_device

    path = DEFAULT_CLASSIFIER_PATH if path is None else Path(path)
    regenerate = TRAIN_CLASSIFIER_COMMAND
    if path.resolve() != DEFAULT_CLASSIFIER_PATH:
        regenerate += f" --out {path}"
    dev = get_device(device)
    payload = load_verified(path, map_location=dev, regenerate=regenerate)
    if not isinstance(payload, dict) or payload.get("format") != 1 or "state_dict" not in payload:
        raise ValueError(f"{path} is not a FashionClassifier checkpoint (expected keys format=1, config, "
                         f"state_dict). Regenerate it with `{regenerate}`.")
    cfg = payload.get("config", {})
    model = FashionClassifier(channels=tuple(cfg.get("channels", (32, 64, 128))),
                              feature_dim=int(cfg.get("feature_dim", 128)))
    model.load_state_dict(payload["state_dict"])
    return model.to(dev).eval()


@functools.lru_cache(maxsize=4)
def _cached_default_classifier(device: str) -> FashionClassifier:
    model = load_classifier(None, device)
    model.requires_grad_(False)
    return model


def _resolve_classifier(classifier: nn.Module | None, device: torch.device) -> nn.Module:
    """The given classifier, or the shipped one on ``device`` (loaded once per device)."""
    if classifier is None:
        return _cached_default_classifier(str(device))
    if not (callable(getattr(classifier, "features", None)) and isinstance(getattr(classifier, "num_features", None), int)):
        raise ValueError("classifier must be a FashionClassifier (or a module with a features(x) method and an "
                         f"int num_features); got {type(classifier).__name__}.")
    return classifier


def _model_device(model: nn.Module, fallback: torch.device) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else fallback


# ----------------------------------------------------------------------------------------------
# Classification metrics
# ----------------------------------------------------------------------------------------------
def _check_batch_size(batch_size) -> None:
    if not is_int(batch_size) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")


@torch.inference_mode()
def classify(images: torch.Tensor, classifier: nn.Module | None = None, batch_size: int = 512) -> torch.Tensor:
    """Predicted classes.

    Args:
        images: (B, 1, S, S) float in [-1, 1].
        classifier: a :class:`FashionClassifier`; ``None`` uses the shipped one (on ``images.device``).
        batch_size: images per forward pass.
    Returns:
        (B,) int64 class indices in [0, 9], on ``images.device``.
    """
    _check_images(images, "images")
    _check_batch_size(batch_size)
    model = _resolve_classifier(classifier, images.device)
    if model.training:
        raise ValueError("classifier is in training mode (BatchNorm would use batch statistics); call .eval() first.")
    dev = _model_device(model, images.device)
    preds = [model(chunk.to(dev)).argmax(dim=1) for chunk in images.split(batch_size)]
    return torch.cat(preds).to(images.device, torch.int64)


def _check_labels(images: torch.Tensor, labels) -> torch.Tensor:
    _check_images(images, "images")
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.is_floating_point() \
            or labels.dtype == torch.bool:
        raise ValueError("labels must be a 1-D integer tensor (B,) of class indices.")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"images and labels disagree on the batch size: {images.shape[0]} vs {labels.shape[0]}.")
    if labels.numel() and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"labels must lie in [0, {NUM_CLASSES - 1}]; got values in "
                         f"[{int(labels.min())}, {int(labels.max())}].")
    return labels.to(images.device, torch.int64)


def class_agreement(images: torch.Tensor, labels: torch.Tensor, classifier: nn.Module | None = None) -> float:
    """Fraction of images the classifier assigns to the class they were generated for.

    Args:
        images: (B, 1, S, S) float in [-1, 1], e.g. samples of a class-conditional model.
        labels: (B,) int64, the requested class of each image.
        classifier: see :func:`classify`.
    Returns:
        a float in [0, 1]; 0.1 is chance level.
    """
    labels = _check_labels(images, labels)
    return (classify(images, classifier) == labels).double().mean().item()


def class_agreement_per_class(images: torch.Tensor, labels: torch.Tensor,
                              classifier: nn.Module | None = None) -> dict[int, float]:
    """:func:`class_agreement` for each requested class.

    Returns:
        {class index: fraction in [0, 1]} for every class that occurs in ``labels`` (absent classes are left out).
    """
    labels = _check_labels(images, labels)
    hit = classify(images, classifier) == labels
    return {int(c): hit[labels == c].double().mean().item() for c in labels.unique().tolist()}


# ----------------------------------------------------------------------------------------------
# Fréchet distance
# ----------------------------------------------------------------------------------------------
class _FeatureAdapter(nn.Module):
    """What torchmetrics' ``FrechetInceptionDistance(feature=<module>)`` calls on each ``update``.

    With a custom module, torchmetrics 1.x passes the images to ``forward`` unchanged (no uint8 cast, no
    3-channel or 299-px resize; ``normalize`` only sets the dtype of a dummy probe), reads ``num_features``
    instead of probing with a dummy image, and casts whatever ``forward`` returns to float64 before it
    accumulates the sums. Returning float64 also makes ``compute`` return float64.

    The classifier is kept out of the module tree (not a registered submodule) so the metric's
    ``.to()``/``set_dtype``/``train()`` can never touch the shared, cached classifier.
    """

    def __init__(self, classifier: nn.Module, batch_size: int = 512):
        super().__init__()
        object.__setattr__(self, "_classifier", classifier)
        self.num_features = int(classifier.num_features)
        self.batch_size = batch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, S, S) in [-1, 1] -> (N, num_features) float64."""
        model = self._classifier
        dev = _model_device(model, x.device)
        with torch.inference_mode():
            feats = [model.features(chunk.to(dev)) for chunk in x.split(self.batch_size)]
        return torch.cat(feats).to(x.device, torch.float64)


def _frechet_from_features(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
                           ) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    d² = ||mu1 - mu2||² + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^{1/2}), where Tr (sigma1 sigma2)^{1/2} is the
    sum of the square roots of the eigenvalues of sigma1 @ sigma2 (real and ≥ 0 for PSD matrices up to
    round-off, whose imaginary or negative residue is dropped). The same formula torchmetrics uses; kept
    here for checks and for callers that already have statistics.

    Args:
        mu1, mu2: (D,) means.
        sigma1, sigma2: (D, D) covariances (symmetric positive semi-definite).
    Returns:
        the squared Fréchet distance, a float ≥ 0 up to round-off.
    """
    mu1, mu2, sigma1, sigma2 = (torch.as_tensor(t, dtype=torch.float64) for t in (mu1, mu2, sigma1, sigma2))
    d = mu1.shape[-1]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"expected mu (D,) and sigma (D, D) for one D; got {tuple(mu1.shape)}, "
                         f"{tuple(sigma1.shape)}, {tuple(mu2.shape)}, {tuple(sigma2.shape)}.")
    eig = torch.linalg.eigvals(sigma1 @ sigma2)
    tr_sqrt = eig.sqrt().real.sum()
    return ((mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * tr_sqrt).item()


def frechet_distance(real_images: torch.Tensor, fake_images: torch.Tensor,
                     classifier: nn.Module | None = None, batch_size: int = 512) -> float:
    """Fréchet distance between Gaussians fitted to classifier features of two image sets ("FID").

    Computed with torchmetrics' ``FrechetInceptionDistance`` given a custom feature extractor (the
    classifier's 128-d :meth:`FashionClassifier.features`); statistics accumulate in float64. Lower is
    better; two samples of the same distribution give a value near 0 that shrinks as the sets grow
    (the estimate is biased upwards for small sets, so compare values computed with equal set sizes).
    To compare several sets with the same real images, :func:`frechet_distances` computes the real
    features once.

    Args:
        real_images: (N, 1, S, S) float in [-1, 1], N ≥ 2 (e.g. the FashionMNIST test split).
        fake_images: (M, 1, S', S') float in [-1, 1], M ≥ 2 (e.g. model samples); S' may differ from S.
        classifier: see :func:`classify`; ``None`` uses the shipped one (on ``real_images.device``).
        batch_size: images per forward pass.
    Returns:
        the squared Fréchet distance as a float (≥ 0 up to round-off).
    Raises:
        ValueError: bad shapes or dtypes, or fewer than 2 images in a set.
    """
    return frechet_distances(real_images, [fake_images], classifier, batch_size)[0]


def frechet_distances(real_images: torch.Tensor, fake_sets, classifier: nn.Module | None = None,
                      batch_size: int = 512) -> list[float]:
    """:func:`frechet_distance` of each set in ``fake_sets`` to the same ``real_images``, whose features
    are computed once (torchmetrics' ``reset_real_features=False``): for a sweep (one set per guidance
    weight or per sampler) this saves one pass of the classifier over the real images per set.

    Args:
        real_images: (N, 1, S, S) float in [-1, 1], N ≥ 2.
        fake_sets: a list (or other iterable) of (M, 1, S', S') float tensors in [-1, 1], M ≥ 2 each.
        classifier, batch_size: as for :func:`frechet_distance`.
    Returns:
        one squared Fréchet distance per set, in order.
    Raises:
        ValueError: bad shapes or dtypes, fewer than 2 images in a set, or no set at all.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    if isinstance(fake_sets, torch.Tensor):
        raise ValueError("fake_sets must be a list of image batches (use frechet_distance for one batch); "
                         f"got a tensor of shape {tuple(fake_sets.shape)}.")
    fake_sets = list(fake_sets)
    if not fake_sets:
        raise ValueError("fake_sets is empty: pass at least one (M, 1, S, S) batch of images.")
    named = [("real_images", real_images)] + [(f"fake_sets[{i}]" if len(fake_sets) > 1 else "fake_images", x)
                                              for i, x in enumerate(fake_sets)]
    for name, x in named:
        _check_images(x, name)
        if x.shape[0] < 2:
            raise ValueError(f"{name} needs at least 2 images to fit a covariance; got {x.shape[0]}.")
    _check_batch_size(batch_size)
    model = _resolve_classifier(classifier, real_images.device)
    if isinstance(model, nn.Module) and model.training:
        raise ValueError("classifier is in training mode (BatchNorm would use batch statistics); call .eval() first.")
    fid = FrechetInceptionDistance(feature=_FeatureAdapter(model, batch_size), normalize=True,
                                   reset_real_features=False)
    fid.update(real_images, real=True)
    out = []
    for x in fake_sets:
        fid.reset()                                   # drops the fake statistics, keeps the real ones
        fid.update(x, real=False)
        out.append(float(fid.compute().item()))
    return out
