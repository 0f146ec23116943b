"""course_utils.checkpoints: one naming of sidecars, hash-checked loading, and clip_x0 stored in the file."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import torch

from course_utils import checkpoints, metrics, pretrained, train, utils
from course_utils.checkpoints import (DEFAULT_CLIP_X0, load_checkpoint, load_verified, save_checkpoint,
                                      sha256_file, sidecar_path, verify_sha256, write_sha256)
from course_utils.diffusion import GaussianDiffusion
from course_utils.models import UNet
from course_utils.schedules import linear_betas


@pytest.fixture
def model():
    torch.manual_seed(0)
    return UNet(channels=(8, 16))


@pytest.fixture
def diffusion():
    return GaussianDiffusion(linear_betas(20))


def test_old_import_paths_are_the_same_functions():
    for name in ("sha256_file", "write_sha256", "verify_sha256"):
        assert getattr(utils, name) is getattr(checkpoints, name) is getattr(metrics, name), name
    assert train.save_checkpoint is checkpoints.save_checkpoint
    assert train.load_checkpoint is checkpoints.load_checkpoint
    assert {"save_checkpoint", "load_checkpoint"} <= set(train.__all__)


def test_sidecar_is_the_file_name_plus_sha256_in_sha256sum_format(tmp_path):
    f = tmp_path / "weights.pt"
    f.write_bytes(b"some bytes")
    assert sidecar_path(f) == tmp_path / "weights.pt.sha256"
    assert sidecar_path(str(f)) == sidecar_path(f)
    side = write_sha256(f)
    assert side == sidecar_path(f)
    digest = sha256_file(f)
    assert side.read_text() == f"{digest}  weights.pt\n" and verify_sha256(f) == digest
    if shutil.which("sha256sum"):
        assert subprocess.run(["sha256sum", "-c", side.name], cwd=tmp_path, capture_output=True).returncode == 0


def test_every_checkpoint_writer_uses_that_sidecar_name(tmp_path, model, diffusion):
    path = save_checkpoint(tmp_path / "m.pt", model, diffusion)
    assert sidecar_path(path).exists() and sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "m.pt.sha256"]
    for name in pretrained.RECIPES:                          # the shipped ones
        assert sidecar_path(pretrained.checkpoint_path(name)).exists(), name
    assert sidecar_path(metrics.DEFAULT_CLASSIFIER_PATH).exists()


def test_load_verified_never_unpickles_a_file_that_does_not_match(tmp_path, monkeypatch):
    f = tmp_path / "x.pt"
    torch.save({"a": torch.ones(2)}, f)
    write_sha256(f)
    assert torch.equal(load_verified(f)["a"], torch.ones(2))
    f.write_bytes(f.read_bytes() + b"!")
    calls = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(a))
    with pytest.raises(ValueError, match="does not match its sha256 sidecar.*Regenerate it with `make x`"):
        load_verified(f, regenerate="make x")
    sidecar_path(f).unlink()
    with pytest.raises(ValueError, match="sidecar x.pt.sha256 is missing"):
        load_verified(f)
    assert calls == []


# ------------------------------------------------------------------ clip_x0: explicit and stored
def test_documented_defaults_disagree_on_purpose(diffusion):
    """A schedule built by hand does not clip (the lessons' raw formulas); a loaded checkpoint does."""
    assert diffusion.clip_x0 is False
    assert DEFAULT_CLIP_X0 is True
    assert "None" in load_checkpoint.__doc__ and "as stored" in load_checkpoint.__doc__


def test_clip_x0_is_stored_and_loaded_as_stored(tmp_path, model, diffusion):
    default = save_checkpoint(tmp_path / "default.pt", model, diffusion)
    raw = save_checkpoint(tmp_path / "raw.pt", model, diffusion, clip_x0=False)
    clipped = save_checkpoint(tmp_path / "clipped.pt", model, GaussianDiffusion(linear_betas(20), clip_x0=True))
    assert torch.load(default, weights_only=True)["clip_x0"] is True
    assert torch.load(raw, weights_only=True)["clip_x0"] is False
    assert load_checkpoint(default)[1].clip_x0 is True            # what save_checkpoint's default stores
    assert load_checkpoint(raw)[1].clip_x0 is False               # None = as stored
    assert load_checkpoint(clipped)[1].clip_x0 is True
    assert load_checkpoint(raw, clip_x0=True)[1].clip_x0 is True  # an explicit choice overrides the file
    assert load_checkpoint(default, clip_x0=False)[1].clip_x0 is False
    kept = save_checkpoint(tmp_path / "kept.pt", model, diffusion, clip_x0=diffusion.clip_x0)
    assert load_checkpoint(kept)[1].clip_x0 is diffusion.clip_x0 is False


def _save_without_clip_key(path, model, diffusion):
    """A checkpoint as save_checkpoint wrote it before clip_x0 was stored (the shipped ones are such files)."""
    payload = {"format": 1, "model_config": model.config.to_dict(), "state_dict": model.state_dict(),
               "betas": diffusion.betas.double(), "variance": diffusion.variance, "meta": {"old": True}}
    torch.save(payload, path)
    write_sha256(path)
    return path


def test_files_without_the_key_get_the_documented_default(tmp_path, model, diffusion):
    old = _save_without_clip_key(tmp_path / "old.pt", model, diffusion)
    m, d, meta = load_checkpoint(old)
    assert d.clip_x0 is DEFAULT_CLIP_X0 is True and meta == {"old": True}
    assert load_checkpoint(old, clip_x0=False)[1].clip_x0 is False


@pytest.mark.parametrize("name", sorted(pretrained.RECIPES))
def test_shipped_checkpoints_are_unchanged_and_still_load_clipped(name):
    path = pretrained.checkpoint_path(name)
    record = json.loads(path.with_suffix(".json").read_text())
    assert sha256_file(path) == record["sha256"] == sidecar_path(path).read_text().split()[0]
    # files written before save_checkpoint stored the choice have no key (they get DEFAULT_CLIP_X0, True);
    # a rebuilt one (cfg16, 2026-12-02) stores it: either way, True
    assert torch.load(path, weights_only=True).get("clip_x0", DEFAULT_CLIP_X0) is True
    assert pretrained.load_pretrained(name)[1].clip_x0 is True
    assert pretrained.load_pretrained(name, clip_x0=False)[1].clip_x0 is False


def test_bad_clip_x0_is_refused_naming_it(tmp_path, model, diffusion):
    path = save_checkpoint(tmp_path / "m.pt", model, diffusion)
    for bad in (1, "yes", 0.0):
        with pytest.raises(ValueError, match=r"clip_x0 must be None \(as stored in the checkpoint\), True or False"):
            load_checkpoint(path, clip_x0=bad)
        with pytest.raises(ValueError, match=r"clip_x0 must be None"):
            pretrained.load_pretrained("ddpm16", clip_x0=bad)
        with pytest.raises(ValueError, match="clip_x0 must be True or False"):
            save_checkpoint(tmp_path / "n.pt", model, diffusion, clip_x0=bad)
    payload = torch.load(path, weights_only=True)
    payload["clip_x0"] = "sometimes"
    torch.save(payload, path)
    write_sha256(path)
    with pytest.raises(ValueError, match="stores clip_x0='sometimes'"):
        load_checkpoint(path)


def test_round_trip_keeps_weights_schedule_and_meta(tmp_path, model):
    d = GaussianDiffusion(linear_betas(30), variance="beta")
    path = save_checkpoint(tmp_path / "sub" / "m.pt", model, d, {"seed": 3})
    m2, d2, meta = load_checkpoint(path)
    assert meta == {"seed": 3} and d2.variance == "beta" and torch.equal(d2.betas, d.betas)
    assert not m2.training and m2.config == model.config
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([0, 29])
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x, t), m2(x, t))
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "absent.pt")
    with pytest.raises(ValueError, match="needs a course_utils.models.UNet"):
        save_checkpoint(tmp_path / "x.pt", torch.nn.Linear(2, 2), d)
