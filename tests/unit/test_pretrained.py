"""Shipped checkpoints (course_utils.pretrained): hash-checked loading, the build command, the records."""
import dataclasses
import json
import shutil

import pytest
import torch

from course_utils import pretrained
from course_utils.pretrained import RECIPES, checkpoint_path, load_pretrained
from course_utils.train import TrainConfig, _synthetic_data


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_shipped_checkpoint_loads_with_its_record(name):
    """Each recipe's checkpoint is in the package, matches its sha256 and records how it was made."""
    model, diffusion, meta = load_pretrained(name)
    rec = json.loads(checkpoint_path(name).with_suffix(".json").read_text())
    assert meta["command"] == rec["command"] == f"python -m course_utils.pretrained build {name}"
    assert rec["wall_time_s"] > 0 and rec["train_config"]["seed"] == RECIPES[name].train.seed
    assert rec["sha256"] == checkpoint_path(name).with_suffix(".pt.sha256").read_text().split()[0]
    assert model.config == RECIPES[name].model
    assert diffusion.num_timesteps == RECIPES[name].T
    assert checkpoint_path(name).stat().st_size < 5_000_000          # small enough for git
    x = torch.randn(2, 1, 16, 16)
    t = torch.tensor([0, 999])
    with torch.no_grad():
        out = model(x, t) if model.config.num_classes is None else model(x, t, torch.tensor([3, 4]))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_tampered_or_missing_checkpoint_is_refused_with_the_rebuild_command(tmp_path):
    name = "ddpm16"
    for suffix in (".pt", ".pt.sha256", ".json"):
        shutil.copy(checkpoint_path(name).with_suffix(suffix), tmp_path / f"{name}{suffix}")
    load_pretrained(name, directory=tmp_path)                       # intact copy loads
    blob = bytearray((tmp_path / f"{name}.pt").read_bytes())
    blob[-100] ^= 0xFF
    (tmp_path / f"{name}.pt").write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="python -m course_utils.pretrained build ddpm16") as err:
        load_pretrained(name, directory=tmp_path)
    assert "sha256" in str(err.value)
    (tmp_path / f"{name}.pt").unlink()
    with pytest.raises(FileNotFoundError, match="python -m course_utils.pretrained build ddpm16"):
        load_pretrained(name, directory=tmp_path)
    with pytest.raises(ValueError, match="unknown checkpoint 'nope'"):
        load_pretrained("nope")


def test_build_command_trains_writes_and_records(tmp_path, monkeypatch):
    """The build path end to end on a 40-step recipe and synthetic data (no files needed)."""
    tiny = dataclasses.replace(RECIPES["cfg16"], train=TrainConfig(steps=4, batch_size=16, seed=5,
                                                                   progress=False, log_every=2),
                               model=dataclasses.replace(RECIPES["cfg16"].model, channels=(8, 16)),
                               notebook=None)
    monkeypatch.setitem(RECIPES, "cfg16", tiny)
    monkeypatch.setattr("course_utils.data.load_fashion_mnist",
                        lambda train=True, image_size=16, **kw: _synthetic_data(64, image_size, 0))
    assert pretrained.main(["build", "cfg16", "--out-dir", str(tmp_path), "--no-progress", "--no-eval"]) == 0
    model, diffusion, meta = load_pretrained("cfg16", directory=tmp_path)
    rec = json.loads((tmp_path / "cfg16.json").read_text())
    assert rec["command"] == "python -m course_utils.pretrained build cfg16"
    assert rec["train_config"]["steps"] == 4 and rec["train_config"]["seed"] == 5
    assert rec["file_bytes"] == (tmp_path / "cfg16.pt").stat().st_size
    assert model.config.channels == (8, 16) and model.null_class == 10


def test_evaluate_ldm32_points_at_the_comparison_command_in_one_line(capsys):
    """ldm32's figures are lesson 09's four-way table: the command says where, as a usage error (exit 2), not a traceback."""
    with pytest.raises(SystemExit) as stop:
        pretrained.main(["evaluate", "ldm32"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "python -m course_utils.sharper evaluate" in err and "Traceback" not in err
