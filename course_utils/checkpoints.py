"""Checkpoints and their sha256 sidecars, in one place.

* The sidecar of ``DIR/NAME`` is ``DIR/NAME.sha256`` (:func:`sidecar_path`), in ``sha256sum`` format
  (``<64 hex digits>  NAME``), so ``cd DIR && sha256sum -c NAME.sha256`` checks it from a shell.
* :func:`load_verified` is the only way a file is unpickled: its sidecar must match first, then
  ``torch.load(weights_only=True)``. The course's checkpoints and the metric's classifier use it.
* :func:`save_checkpoint` / :func:`load_checkpoint`: a U-Net (its :class:`UNetConfig` and weights), its
  schedule (betas, σ² choice, whether the samplers clip x̂0) and a JSON-like ``meta`` dict.

``course_utils.utils``, ``course_utils.metrics`` (the hashing helpers) and ``course_utils.train`` (the two
checkpoint functions) re-export these names, so the older import paths keep working.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from .validation import check_clip_x0

__all__ = ["sidecar_path", "sha256_file", "write_sha256", "verify_sha256", "load_verified",
           "save_checkpoint", "load_checkpoint", "save_module", "load_module_payload", "load_shipped_module",
           "save_module_with_record", "DEFAULT_CLIP_X0"]

# Whether the schedule of a loaded checkpoint clips x̂0 when the checkpoint does not say (files written
# before ``clip_x0`` was stored, e.g. the shipped ddpm16 and cfg16): clipped, as documented since they shipped.
DEFAULT_CLIP_X0 = True


# ----------------------------------------------------------------------------------------------
# sha256 sidecars
# ----------------------------------------------------------------------------------------------
def sidecar_path(path: str | os.PathLike) -> Path:
    """The sidecar of ``path``: the same name with ``.sha256`` appended (``m.pt`` → ``m.pt.sha256``)."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, as 64 lowercase hex digits (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_sha256(path: str | os.PathLike) -> Path:
    """Write the sidecar ``PATH.sha256`` in ``sha256sum`` format (``<hex>  <file name>``).

    ``cd DIR && sha256sum -c FILE.sha256`` checks it from a shell.

    Returns:
        the path of the sidecar.
    """
    path = Path(path)
    side = sidecar_path(path)
    side.write_text(f"{sha256_file(path)}  {path.name}\n", encoding="utf-8")
    return side


def verify_sha256(path: str | os.PathLike, regenerate: str | None = None) -> str:
    """Check a file against its ``PATH.sha256`` sidecar before anything unpickles it.

    Args:
        path: the file to check.
        regenerate: the command that re-creates the file, quoted in the error message.
    Returns:
        the file's sha256 (hex) when it matches.
    Raises:
        FileNotFoundError: the file itself does not exist.
        ValueError: the sidecar is missing or unreadable, or the hash differs (the file was changed or
            corrupted); the message says how to re-create the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}.")
    how = (f"Regenerate it with `{regenerate}`." if regenerate
           else "Re-create it with the script that wrote it (it writes the sidecar too).")
    side = sidecar_path(path)
    try:
        fields = side.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: its sha256 sidecar {side.name} is missing or unreadable ({type(err).__name__}), "
                         f"so the file cannot be checked before loading. {how}") from None
    expected = fields[0].lower() if fields else ""
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise ValueError(f"{side} does not hold a sha256 in sha256sum format ('<64 hex digits>  <file name>'). "
                         f"{how}")
    actual = sha256_file(path)
    if actual != expected:
        raise ValueError(f"{path} does not match its sha256 sidecar (expected {expected[:12]}…, got {actual[:12]}…): "
                         f"the file was changed or corrupted, so it is not loaded. {how}")
    return actual


def load_verified(path: str | os.PathLike, map_location=None, regenerate: str | None = None):
    """``torch.load(path, weights_only=True)``, only after ``path`` matches its sha256 sidecar.

    Args:
        path: the file; map_location: as for ``torch.load``; regenerate: see :func:`verify_sha256`.
    Raises:
        FileNotFoundError, ValueError: from :func:`verify_sha256`.
    """
    verify_sha256(path, regenerate=regenerate)
    return torch.load(path, map_location=map_location, weights_only=True)


# ----------------------------------------------------------------------------------------------
# Model checkpoints
# ----------------------------------------------------------------------------------------------
def save_checkpoint(path: str | os.PathLike, model, diffusion, meta: dict | None = None, *,
                    clip_x0: bool = DEFAULT_CLIP_X0) -> Path:
    """Save a model (its UNetConfig and weights) and its schedule, plus a ``.sha256`` sidecar.

    Args:
        path: the ``.pt`` file to write (folders are created).
        model: a :class:`course_utils.models.UNet` (its ``config`` is saved to rebuild it).
        diffusion: the schedule it was trained with (its betas and ``variance`` are saved).
        meta: plain JSON-like facts (command, seed, wall time, …) stored beside the weights.
        clip_x0: stored in the file: whether the samplers of the schedule that :func:`load_checkpoint`
            returns clip x̂0 to [-1, 1] (unless the loader overrides it). Default ``True``: a checkpoint is
            loaded to sample from, and a small, briefly trained model needs clipping there (see
            :func:`load_checkpoint`). The default does not follow ``diffusion.clip_x0`` (False by
            default, the raw formulas that the lessons teach); pass ``clip_x0=diffusion.clip_x0`` to
            keep the schedule's own setting.
    Returns:
        the path of the checkpoint.
    """
    from .models import UNetConfig

    if not isinstance(getattr(model, "config", None), UNetConfig):
        raise ValueError("save_checkpoint needs a course_utils.models.UNet (it stores model.config).")
    if not isinstance(clip_x0, bool):
        raise ValueError(f"clip_x0 must be True or False (do the loaded schedule's samplers clip x̂0 to "
                         f"[-1, 1]?); got {clip_x0!r}.")
    payload = {
        "format": 1,
        "model_config": model.config.to_dict(),
        "state_dict": _cpu_state(model),
        "betas": diffusion.betas.detach().to("cpu", torch.float64),
        "variance": diffusion.variance,
        "clip_x0": clip_x0,
        "meta": json.loads(json.dumps(meta or {})),
    }
    return _write_atomic(Path(path), payload)


def _cpu_state(model) -> dict:
    return {k: v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.detach().cpu()
            for k, v in model.state_dict().items()}


def _write_atomic(path: Path, payload: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    torch.save(payload, tmp)
    tmp.replace(path)
    write_sha256(path)
    return path


def save_module(path: str | os.PathLike, kind: str, model, config: dict, meta: dict | None = None) -> Path:
    """Save any course model that is rebuilt from a plain config dict (lesson 08's CLIP and text U-Net).

    The file holds ``{"format": 1, "kind": kind, "config": config, "state_dict": …, "meta": …}`` and gets a
    ``.sha256`` sidecar; :func:`load_module_payload` reads it back for the module that knows ``kind``.
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind must be a non-empty string naming the model class; got {kind!r}.")
    if not isinstance(config, dict):
        raise ValueError(f"config must be a plain dict (e.g. model.config.to_dict()); got {type(config).__name__}.")
    payload = {"format": 1, "kind": kind, "config": json.loads(json.dumps(config)), "state_dict": _cpu_state(model),
               "meta": json.loads(json.dumps(meta or {}))}
    return _write_atomic(Path(path), payload)


def load_module_payload(path: str | os.PathLike, kind: str, device: str | torch.device = "cpu",
                        regenerate: str | None = None) -> dict:
    """The payload written by :func:`save_module`, after its sha256 matches; ``kind`` must be the stored one."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}." + (f" Rebuild it with `{regenerate}`." if regenerate else ""))
    payload = load_verified(path, map_location=device, regenerate=regenerate)
    if not isinstance(payload, dict) or payload.get("format") != 1 or payload.get("kind") != kind:
        raise ValueError(f"{path} is not a {kind} checkpoint (it stores kind={payload.get('kind') if isinstance(payload, dict) else None!r}).")
    return payload


def load_shipped_module(name: str, kind: str, build, device: str | torch.device = "cpu", path=None):
    """A shipped module checkpoint ``<name>.pt`` (lessons 08 and 09), sha256-checked, frozen, in eval mode.

    Args:
        name: the checkpoint's name (``course_utils.pretrained``), for the default path and the rebuild command.
        kind: the kind :func:`save_module` stored. build: ``build(config) -> nn.Module`` (the model's class).
        device: where the model goes. path: the file, instead of ``course_utils/assets/<name>.pt``.
    Returns:
        (the model, the stored meta dict).
    """
    from .pretrained import ASSETS, BUILD_COMMAND
    from .utils import get_device

    dev = get_device(device)
    path = ASSETS / f"{name}.pt" if path is None else path
    payload = load_module_payload(path, kind, dev, regenerate=f"{BUILD_COMMAND} {name}")
    model = build(payload["config"]).to(dev)
    model.load_state_dict(payload["state_dict"])
    model.eval().requires_grad_(False)
    return model, payload["meta"]


def save_module_with_record(path: str | os.PathLike, kind: str, model, config: dict, meta: dict,
                            hidden: tuple[str, ...] = ("betas",)) -> Path:
    """:func:`save_module`, then the ``.json`` record beside it: ``meta`` without the ``hidden`` keys (bulky
    values kept only in the file, such as the betas), plus the file's sha256 and size."""
    path = save_module(path, kind, model, config, meta)
    rec = {k: v for k, v in meta.items() if k not in hidden}
    rec["sha256"] = sidecar_path(path).read_text().split()[0]
    rec["file_bytes"] = path.stat().st_size
    path.with_suffix(".json").write_text(json.dumps(rec, indent=2) + "\n")
    return path


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu", clip_x0: bool | None = None):
    """Load a checkpoint written by :func:`save_checkpoint` after checking its sha256.

    Args:
        path: the ``.pt`` file (its ``.sha256`` sidecar must match).
        device: where the model and schedule go.
        clip_x0: whether the returned schedule's samplers clip the predicted x̂0 to [-1, 1] at every step.
            ``None`` (default): as stored in the file by :func:`save_checkpoint`; files that store nothing
            (written before the setting was stored, such as the shipped ``ddpm16`` and ``cfg16``) give
            :data:`DEFAULT_CLIP_X0` = ``True``, as the reference code of Ho et al. and Song et al. does
            when sampling: a small model trained for minutes needs it for deterministic DDIM (its x̂0 at
            t = T-1 amplifies ε errors ~157×). ``True`` / ``False`` override the file; ``False`` gives the
            raw samplers.
    Returns:
        (model in eval mode, its GaussianDiffusion, the meta dict), on ``device``.
    Raises:
        ValueError: the file does not match its sha256 sidecar (changed or corrupted), or the sidecar
            is missing, or the file is not a course checkpoint, or ``clip_x0`` is not None/True/False.
    """
    from .diffusion import GaussianDiffusion
    from .models import UNet, UNetConfig
    from .utils import get_device

    check_clip_x0(clip_x0)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}.")
    dev = get_device(device)
    payload = load_verified(path, map_location=dev)
    if not isinstance(payload, dict) or payload.get("format") != 1 or "state_dict" not in payload:
        raise ValueError(f"{path} is not a course_utils checkpoint (expected keys format=1, model_config, "
                         "state_dict, betas).")
    stored = payload.get("clip_x0", DEFAULT_CLIP_X0)
    if not isinstance(stored, bool):
        raise ValueError(f"{path} stores clip_x0={stored!r}; a course_utils checkpoint stores True or False.")
    model = UNet(UNetConfig.from_dict(payload["model_config"])).to(dev)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    diffusion = GaussianDiffusion(payload["betas"], variance=payload.get("variance", "beta_tilde"),
                                  clip_x0=stored if clip_x0 is None else clip_x0).to(dev)
    return model, diffusion, payload.get("meta", {})
