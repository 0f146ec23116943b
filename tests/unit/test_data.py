"""Data loading: the Debian files, the search order, resizing and the [-1, 1] range."""
import gzip
import os
import shutil
from pathlib import Path

import pytest
import torch

from course_utils import data as D
from conftest import require_data


def test_debian_files_unzip_into_root_and_load(tmp_path, monkeypatch):
    """From Debian's .gz files alone (no network: download=False) into ROOT/FashionMNIST/raw/."""
    if not all((D.DEBIAN_DIR / (f + ".gz")).exists() for f in D.RAW_FILES):
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's dataset-fashion-mnist")
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    monkeypatch.setattr(D, "_checkout_data_dir", lambda: None)
    monkeypatch.chdir(tmp_path)
    ds = D.load_fashion_mnist(train=False, image_size=28, root=tmp_path / "fm", download=False)
    assert sorted(p.name for p in (tmp_path / "fm" / "FashionMNIST" / "raw").iterdir()) == sorted(D.RAW_FILES)
    assert ds.images.shape == (10_000, 1, 28, 28) and ds.labels.shape == (10_000,)
    assert ds.images.dtype == torch.float32 and ds.labels.dtype == torch.int64
    assert float(ds.images.min()) == -1.0 and float(ds.images.max()) == 1.0
    assert torch.bincount(ds.labels).tolist() == [1000] * 10          # the test split is balanced
    assert ds.classes[0] == "T-shirt/top" and len(ds.classes) == 10


@pytest.mark.parametrize("size", [16, 28, 32])
def test_sizes_and_range(size):
    require_data()
    ds = D.load_fashion_mnist(train=True, image_size=size, limit=256)
    assert ds.images.shape == (256, 1, size, size)
    assert -1.0 <= float(ds.images.min()) and float(ds.images.max()) <= 1.0
    assert float(ds.images.min()) < -0.9                 # the background is -1, not 0: data is in [-1, 1]
    assert len(ds) == 256


def test_resize_keeps_the_picture():
    require_data()
    a = D.load_fashion_mnist(train=False, image_size=28, limit=64).images
    b = D.load_fashion_mnist(train=False, image_size=16, limit=64).images
    back = torch.nn.functional.interpolate(b, size=(28, 28), mode="bilinear")
    same = torch.nn.functional.mse_loss(back, a)
    other = torch.nn.functional.mse_loss(back, a.roll(1, dims=0))     # each image vs another one
    assert same < 0.1 and same < 0.25 * other


def test_search_order(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.chdir(tmp_path)
    roots = D.data_roots(tmp_path / "explicit")
    assert roots[:3] == [(tmp_path / "explicit").resolve(), (tmp_path / "env").resolve(), (tmp_path / "data").resolve()]
    checkout = D._checkout_data_dir()
    assert roots[3:] == ([checkout.resolve()] if checkout else [])
    assert D._target_root(None) == (tmp_path / "env").resolve()
    monkeypatch.delenv("COURSE_DATA_DIR")
    assert D._target_root(None) == (checkout or tmp_path / "data").resolve()


def test_explicit_root_with_gz_files(tmp_path, monkeypatch):
    """Files copied by hand (still gzipped) into DIR/FashionMNIST/raw are found through COURSE_DATA_DIR."""
    require_data()
    src = D.prepare(download=False) / "FashionMNIST" / "raw"
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in D.RAW_FILES:
        with open(src / f, "rb") as fin, gzip.open(raw / (f + ".gz"), "wb", compresslevel=1) as fout:
            shutil.copyfileobj(fin, fout)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    assert D.prepare(download=False) == tmp_path.resolve()
    ds = D.load_fashion_mnist(train=False, image_size=16, limit=10, download=False)
    assert ds.images.shape == (10, 1, 16, 16)


def test_missing_data_error_names_places_and_fixes(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setattr(D, "_checkout_data_dir", lambda: None)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(D.DataNotFoundError) as err:
        D.prepare(tmp_path / "explicit", download=False)
    msg = str(err.value)
    for part in ["explicit", "env", "no-debian", "apt-get install dataset-fashion-mnist", "COURSE_DATA_DIR"]:
        assert part in msg


def test_bad_arguments():
    with pytest.raises(ValueError, match="image_size"):
        D.load_fashion_mnist(image_size=20)
    with pytest.raises(ValueError, match="unknown data set"):
        D.prepare(name="cifar10")
    with pytest.raises(ValueError, match="limit"):
        D.load_fashion_mnist(limit=0)


def test_iterate_batches_covers_an_epoch():
    ds = D.TensorDataset(torch.arange(10.0).view(10, 1, 1, 1), torch.arange(10), ())
    it = D.iterate_batches(ds, 5, generator=torch.Generator().manual_seed(0))
    first = torch.cat([next(it)[1], next(it)[1]])
    assert sorted(first.tolist()) == list(range(10))
    with pytest.raises(ValueError, match="batch_size"):
        next(D.iterate_batches(ds, 11))


def test_prepare_cli(tmp_path):
    require_data()
    root = D.prepare(download=False)
    assert D.main(["prepare", "--root", str(root), "--no-download"]) == 0


def test_to_model_range():
    x = torch.tensor([0, 127, 128, 255], dtype=torch.uint8)
    out = D.to_model_range(x)
    assert out.dtype == torch.float32 and out[0] == -1.0 and out[-1] == 1.0
    assert abs(float(out[1]) + float(out[2])) < 1e-2          # symmetric around 0
    with pytest.raises(ValueError, match="uint8"):
        D.to_model_range(x.float())


def test_decoded_split_is_cached_beside_the_idx_files_and_checked(tmp_path):
    """The first load writes course-test-uint8.pt; a later process loads it without importing torchvision;
    a cache from other idx files (another mtime) or a damaged one is ignored and rewritten."""
    import subprocess
    import sys

    require_data()
    src = D.prepare(download=False) / "FashionMNIST" / "raw"
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in D.RAW_FILES:
        if f.startswith("t10k"):
            shutil.copy2(src / f, raw / f)
    for f in D.RAW_FILES:                      # the train split is not asked for: empty stand-ins suffice
        if f.startswith("train"):
            (raw / f).write_bytes(b"")
    cache = tmp_path / "FashionMNIST" / "course-test-uint8.pt"
    D._load_uint8.cache_clear()
    first = D.load_fashion_mnist(train=False, image_size=28, root=tmp_path, download=False)
    assert cache.is_file()
    probe = ("import sys, torch; from course_utils import data as D; "
             f"ds = D.load_fashion_mnist(train=False, image_size=28, root={str(tmp_path)!r}, download=False); "
             "print('torchvision' in sys.modules, float(ds.images.sum()), int(ds.labels.sum()))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", str(float(first.images.sum())), str(int(first.labels.sum()))]

    os.utime(raw / "t10k-labels-idx1-ubyte", (1, 1))        # other files: the cache's stamp no longer matches
    D._load_uint8.cache_clear()
    before = cache.stat().st_mtime_ns
    again = D.load_fashion_mnist(train=False, image_size=28, root=tmp_path, download=False)
    assert torch.equal(again.labels, first.labels) and cache.stat().st_mtime_ns != before
    cache.write_bytes(b"not a torch file")
    D._load_uint8.cache_clear()
    assert torch.equal(D.load_fashion_mnist(train=False, image_size=28, root=tmp_path, download=False).images,
                       first.images)
    assert torch.load(cache, weights_only=True)["images"].dtype == torch.uint8    # rewritten
    D._load_uint8.cache_clear()
