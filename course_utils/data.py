"""FashionMNIST (and MNIST) as tensors in [-1, 1], offline first.

Where the files come from, in order:

1. an explicit ``root`` argument,
2. ``$COURSE_DATA_DIR``,
3. ``./data``,
   (and the repository's own ``data/`` folder when the package is an editable install of a course
   checkout, so a notebook running in ``solutions/02_…/`` finds the data that ``./course.sh`` prepared),
4. Debian's package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist/*.gz``), unzipped into
   ``TARGET/FashionMNIST/raw/``,
5. torchvision's download into TARGET (needs the internet, e.g. in Colab).

TARGET is the explicit root, else ``$COURSE_DATA_DIR``, else the checkout's ``data/``, else ``./data``.

The fast path keeps the whole set as one tensor on the device and draws batches by indexing it
(:func:`iterate_batches`), instead of a per-item ``DataLoader``.

Run ``python -m course_utils.data prepare --root DIR`` to put the files in place ahead of time.
"""
from __future__ import annotations

import argparse
import functools
import gzip
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .validation import is_int

__all__ = ["load_dataset", "load_fashion_mnist", "to_model_range", "prepare", "data_roots", "iterate_batches",
           "FASHION_MNIST_CLASSES", "DataNotFoundError", "TensorDataset"]

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
SIZES = (16, 28, 32)
DATASETS = {"fashion_mnist": "FashionMNIST", "mnist": "MNIST"}


class DataNotFoundError(FileNotFoundError):
    """The data set is in none of the places the course looks; the message lists them and the fixes."""


@dataclass
class TensorDataset:
    """A whole data set in memory.

    Attributes:
        images: (N, 1, S, S) float32 in [-1, 1].
        labels: (N,) int64 class indices in [0, 9].
        classes: the class names.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device) -> "TensorDataset":
        return TensorDataset(self.images.to(device), self.labels.to(device), self.classes)


def _checkout_data_dir() -> Path | None:
    """``<repo>/data`` when this package is imported from a course checkout (editable install)."""
    repo = Path(__file__).resolve().parents[1]
    return repo / "data" if (repo / "course.sh").exists() else None


def data_roots(root: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched, in order (explicit root, $COURSE_DATA_DIR, ./data, the checkout's data/)."""
    cands = [root, os.environ.get("COURSE_DATA_DIR") or None, "data", _checkout_data_dir()]
    out: list[Path] = []
    for c in cands:
        if c is None:
            continue
        p = Path(c).expanduser().resolve()
        if p not in out:
            out.append(p)
    return out


def _target_root(root) -> Path:
    """Where Debian's files are unzipped or torchvision downloads (see the module docstring)."""
    for c in (root, os.environ.get("COURSE_DATA_DIR") or None, _checkout_data_dir(), "data"):
        if c is not None:
            return Path(c).expanduser().resolve()
    raise AssertionError("unreachable")


def _gunzip_all(src: Path, raw: Path) -> bool:
    """Unzip the four idx ``.gz`` files of ``src`` into ``raw`` (torchvision reads them unzipped)."""
    if not all((raw / f).exists() or (src / (f + ".gz")).exists() for f in RAW_FILES):
        return False
    try:
        raw.mkdir(parents=True, exist_ok=True)
        for f in RAW_FILES:
            out = raw / f
            if not out.exists():
                tmp = out.with_suffix(".part")
                with gzip.open(src / (f + ".gz"), "rb") as fin, open(tmp, "wb") as fout:
                    shutil.copyfileobj(fin, fout)
                tmp.replace(out)
    except (OSError, EOFError):
        return False
    return True


def _has_raw(root: Path, folder: str) -> bool:
    """True when root/folder/raw holds the four idx files (gzipped copies are unzipped in place)."""
    raw = root / folder / "raw"
    if all((raw / f).exists() for f in RAW_FILES):
        return True
    return raw.is_dir() and _gunzip_all(raw, raw)


def _unzip_debian(target: Path) -> bool:
    """Unzip Debian's idx .gz files into target/FashionMNIST/raw; True when the files are in place."""
    return _gunzip_all(DEBIAN_DIR, target / "FashionMNIST" / "raw")


def prepare(root: str | os.PathLike | None = None, name: str = "fashion_mnist", download: bool = True) -> Path:
    """Make sure the raw files are on disk and return the root torchvision should read.

    Raises:
        DataNotFoundError: naming every place tried and the three ways to get the data.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(DATASETS)}.")
    folder = DATASETS[name]
    roots = data_roots(root)
    for r in roots:
        if _has_raw(r, folder):
            return r
    target = _target_root(root)
    if name == "fashion_mnist" and _unzip_debian(target):
        return target
    if download:
        try:
            from torchvision import datasets

            cls = getattr(datasets, folder)
            for train in (True, False):
                cls(str(target), train=train, download=True)
            return target
        except Exception as err:  # no network, or a mirror is down
            reason = f"{type(err).__name__}: {err}"
    else:
        reason = "download=False"
    tried = "\n".join(f"  - {r / folder / 'raw'}" for r in roots)
    raise DataNotFoundError(
        f"{folder} was not found. Places tried:\n{tried}\n  - {DEBIAN_DIR} (Debian package)\n"
        f"  - torchvision download into {target} ({reason})\n"
        "Get it in one of three ways:\n"
        "  1. online (Colab, a laptop): just re-run; torchvision downloads it (about 30 MB);\n"
        "  2. offline on Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist;\n"
        f"  3. copy the four idx files ({', '.join(RAW_FILES)}, .gz or not) into DIR/{folder}/raw/ "
        "and pass root=DIR or set COURSE_DATA_DIR=DIR.")


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels {0, …, 255} → float32 in [-1, 1] (x / 127.5 − 1), the range DDPM works in.

    Args:
        images: uint8 tensor of any shape.
    Returns:
        float32 tensor of the same shape (a new tensor; the input is not changed).
    """
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        raise ValueError(f"to_model_range expects uint8 pixels in [0, 255]; got "
                         f"{getattr(images, 'dtype', type(images).__name__)}.")
    return images.float().div(127.5).sub(1.0)


def _split_files(root: Path, folder: str, train: bool) -> list[Path]:
    prefix = "train" if train else "t10k"
    return [root / folder / "raw" / f for f in RAW_FILES if f.startswith(prefix)]


def _uint8_cache(root: Path, folder: str, train: bool) -> Path:
    """Where the decoded split is kept: ``root/folder/course-{train,test}-uint8.pt``."""
    return root / folder / f"course-{'train' if train else 'test'}-uint8.pt"


def _raw_stamp(root: Path, folder: str, train: bool) -> list[list]:
    """Name, size and mtime of the split's idx files: a cache made from other files is not used."""
    return [[p.name, p.stat().st_size, int(p.stat().st_mtime)] for p in _split_files(root, folder, train)]


@functools.lru_cache(maxsize=8)
def _load_uint8(root: str, folder: str, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The split as uint8 images (N, 28, 28) and int64 labels (N,).

    torchvision parses the idx files; the result is kept beside them (``course-*-uint8.pt``, written by
    ``python -m course_utils.data prepare`` or by the first load where the folder is writable) and read
    back with ``torch.load(weights_only=True)``, which saves importing torchvision (about 2 s, 4 s on a
    busy machine) in every notebook that only needs the data. A cache whose idx files' names, sizes or
    modification times differ is ignored and rewritten.
    """
    base = Path(root)
    cache, stamp = _uint8_cache(base, folder, train), _raw_stamp(base, folder, train)
    if cache.is_file():
        try:
            saved = torch.load(cache, map_location="cpu", weights_only=True)
            if saved.get("stamp") == stamp:
                return saved["images"], saved["labels"]
        except Exception:  # noqa: BLE001 (a truncated or foreign file: parse the idx files again)
            pass
    from torchvision import datasets

    ds = getattr(datasets, folder)(root, train=train, download=False)
    images, labels = ds.data.clone(), ds.targets.clone()
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.part")
    try:
        torch.save({"stamp": stamp, "images": images, "labels": labels}, tmp)
        tmp.replace(cache)
    except (OSError, RuntimeError):    # a read-only folder (a sandbox, a shared mount) or a full disk: no cache
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    return images, labels


def load_dataset(name: str = "fashion_mnist", train: bool = True, image_size: int = 28,
                 root: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                 limit: int | None = None, download: bool = True) -> TensorDataset:
    """Load a whole split as tensors in [-1, 1].

    Args:
        name: ``"fashion_mnist"`` (offline via Debian) or ``"mnist"`` (download only).
        train: the 60 000-image training split, else the 10 000-image test split.
        image_size: 16, 28 (native) or 32 pixels; resizing is bilinear with antialiasing.
        root: where to look first (see the module docstring for the search order).
        device: where the tensors live ("cpu", "cuda", "auto", …).
        limit: keep only the first ``limit`` images (fast modes, tests).
        download: allow torchvision to download as the last resort.
    Returns:
        TensorDataset with images (N, 1, S, S) float32 in [-1, 1] and labels (N,) int64.
    """
    from .utils import get_device

    if image_size not in SIZES:
        raise ValueError(f"image_size must be one of {SIZES}; got {image_size!r}.")
    if limit is not None and (not is_int(limit) or limit <= 0):
        raise ValueError(f"limit must be a positive int or None; got {limit!r}.")
    base = prepare(root, name, download=download)
    x, y = _load_uint8(str(base), DATASETS[name], bool(train))
    if limit is not None:
        x, y = x[:limit], y[:limit]
    dev = get_device(device)
    x = to_model_range(x.to(dev).unsqueeze(1))                     # (N, 1, 28, 28) in [-1, 1]
    if image_size != 28:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True,
                          align_corners=False).clamp_(-1.0, 1.0)
    classes = FASHION_MNIST_CLASSES if name == "fashion_mnist" else tuple(str(i) for i in range(10))
    return TensorDataset(x.contiguous(), y.to(dev).long(), classes)


def load_fashion_mnist(train: bool = True, image_size: int = 28, **kwargs) -> TensorDataset:
    """FashionMNIST; see :func:`load_dataset`."""
    return load_dataset("fashion_mnist", train=train, image_size=image_size, **kwargs)


def iterate_batches(data: TensorDataset, batch_size: int, generator: torch.Generator | None = None,
                    drop_last: bool = True):
    """Endless shuffled batches (images, labels) from a resident data set, one epoch after another.

    Indexing a tensor that already lives on the device avoids the per-item overhead of a DataLoader.
    The permutation is drawn with ``generator`` (on the CPU) for reproducibility.
    """
    n = len(data)
    if not is_int(batch_size) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
    if drop_last and batch_size > n:
        raise ValueError(f"batch_size={batch_size} is larger than the data set ({n} images).")
    while True:
        perm = torch.randperm(n, generator=generator).to(data.images.device)
        stop = n - batch_size + 1 if drop_last else n
        for i in range(0, stop, batch_size):
            idx = perm[i:i + batch_size]
            yield data.images[idx], data.labels[idx]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="put the raw files in place (Debian package or download)")
    p.add_argument("--root", default=None)
    p.add_argument("--name", default="fashion_mnist", choices=sorted(DATASETS))
    p.add_argument("--no-download", action="store_true")
    args = parser.parse_args(argv)
    try:
        where = prepare(args.root, args.name, download=not args.no_download)
    except DataNotFoundError as err:
        print(err, file=sys.stderr)
        return 1
    for train in (True, False):                       # decode once, so that later loads skip torchvision
        _load_uint8(str(where), DATASETS[args.name], train)
    print(f"{DATASETS[args.name]} ready under {where / DATASETS[args.name] / 'raw'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
