"""Training loop (Algorithm 1), EMA, checkpoints, and DDP with two CPU processes (gloo)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import require_data
from course_utils.data import load_fashion_mnist
from course_utils.diffusion import GaussianDiffusion
from course_utils.models import UNet
from course_utils.schedules import linear_betas
from course_utils.train import (TrainConfig, _synthetic_data, load_checkpoint, save_checkpoint, train)

ARTIFACTS = Path(__file__).resolve().parents[2] / "ci-artifacts"


def tiny_unet(**kw):
    torch.manual_seed(0)
    return UNet(channels=(16, 32), **kw)


@pytest.mark.slow                    # ≈ 220 s on a loaded 2-core machine: out of ./course.sh test --fast
def test_cpu_training_loss_falls():
    """A seeded CPU run on FashionMNIST 16 px: the loss falls well below its starting value."""
    require_data()
    data = load_fashion_mnist(train=True, image_size=16, limit=4096)
    # 120 steps: the mean loss of the last 50 is ≈ 0.08 (first 25: ≈ 0.71), far inside both bounds below
    cfg = TrainConfig(steps=120, batch_size=64, lr=2e-3, warmup_steps=20, seed=0, device="cpu",
                      progress=False, log_every=25)
    res = train(tiny_unet(), GaussianDiffusion(linear_betas(1000)), data, cfg)
    first, last = sum(res.losses[:25]) / 25, sum(res.losses[-50:]) / 50
    print(f"\nCPU training test: first-25 mean loss {first:.4f}, last-50 mean loss {last:.4f}, "
          f"{res.wall_time:.1f} s, {res.images_per_second:.0f} images/s")
    assert len(res.losses) == 120
    assert last < 0.5 * first and last < 0.2
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "cpu_training_losses.json").write_text(json.dumps(res.losses))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(res.losses)
    ax.set(xlabel="step", ylabel="L_simple", yscale="log", title="CPU training test (16 px FashionMNIST)")
    fig.tight_layout()
    fig.savefig(ARTIFACTS / "cpu_training_loss.png", dpi=80)
    plt.close(fig)


def test_seeded_runs_are_identical_and_ema_follows_its_recurrence():
    data = _synthetic_data(256, 8, seed=0)
    diffusion = GaussianDiffusion(linear_betas(50))
    snapshots = []

    def record(state):
        snapshots.append([p.detach().clone() for p in state.model.parameters()])

    cfg = TrainConfig(steps=6, batch_size=32, seed=3, device="cpu", progress=False, log_every=1, ema_decay=0.9,
                      ema_warmup=False)
    a = train(tiny_unet(), diffusion, data, cfg, callbacks=[record])
    b = train(tiny_unet(), diffusion, data, cfg)
    assert a.losses == b.losses
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)
    # EMA: the first update copies, then ema ← 0.9·ema + 0.1·θ (computed here from the snapshots)
    ema = [p.clone() for p in snapshots[0]]
    for snap in snapshots[1:]:
        ema = [0.9 * e + 0.1 * s for e, s in zip(ema, snap)]
    for e, p in zip(ema, a.ema_model.parameters()):
        assert torch.allclose(e, p, atol=1e-6)
    assert any(not torch.equal(p, q) for p, q in zip(a.ema_model.parameters(), a.model.parameters()))


def test_batches_through_a_dataloader_are_the_resident_batches():
    """resident_data=False feeds the same batches through a DataLoader: identical losses and weights; every epoch
    is a permutation cut into full batches (checked against the indices themselves)."""
    from course_utils.train import _epoch_batches

    g = torch.Generator().manual_seed(0)
    it = _epoch_batches(10, 3, g, torch.device("cpu"))
    epochs = [torch.cat([next(it) for _ in range(3)]) for _ in range(2)]      # 3 full batches, 1 image left out
    assert all(len(set(e.tolist())) == 9 and set(e.tolist()) <= set(range(10)) for e in epochs)
    assert not torch.equal(epochs[0], epochs[1])
    data = _synthetic_data(300, 8, seed=0)                  # batch 64: 4 batches an epoch, 10 steps cross epochs
    runs = [train(tiny_unet(num_classes=10), GaussianDiffusion(linear_betas(50)), data,
                  TrainConfig(steps=10, batch_size=64, seed=1, device="cpu", progress=False, log_every=5,
                              resident_data=resident)) for resident in (True, False)]
    assert runs[0].losses == runs[1].losses
    assert all(torch.equal(p, q) for p, q in zip(runs[0].model.parameters(), runs[1].model.parameters()))
    with pytest.raises(ValueError, match="resident_data"):
        TrainConfig(resident_data="yes")


def test_conditional_training_drops_labels():
    data = _synthetic_data(256, 8, seed=0)
    model = tiny_unet(num_classes=10)
    seen = []
    orig = model.forward

    def spy(x, t, y=None):
        seen.append(y.clone())
        return orig(x, t, y)

    model.forward = spy
    cfg = TrainConfig(steps=20, batch_size=64, seed=0, device="cpu", progress=False, p_uncond=0.25)
    train(model, GaussianDiffusion(linear_betas(50)), data, cfg)
    ys = torch.cat(seen)
    rate = float((ys == model.null_class).float().mean())
    assert 0.18 < rate < 0.32                      # 1280 labels, p = 0.25 (±4.4 standard errors)


def test_bad_training_input():
    model, diffusion = tiny_unet(), GaussianDiffusion(linear_betas(10))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        train(model, diffusion, torch.rand(64, 1, 8, 8), TrainConfig(steps=1, batch_size=8, progress=False))
    with pytest.raises(ValueError, match="batch_size"):
        train(model, diffusion, torch.rand(4, 1, 8, 8) * 2 - 1, TrainConfig(steps=1, batch_size=8, progress=False))
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="amp"):
        TrainConfig(amp="fp8")


def test_checkpoint_round_trip_and_tamper_detection(tmp_path):
    model = tiny_unet(num_classes=10)
    diffusion = GaussianDiffusion(linear_betas(100), variance="beta")
    path = save_checkpoint(tmp_path / "ck" / "m.pt", model, diffusion, {"seed": 0, "note": "test"})
    sidecar = Path(str(path) + ".sha256")
    assert sidecar.exists()
    m2, d2, meta = load_checkpoint(path)
    assert meta == {"seed": 0, "note": "test"} and d2.variance == "beta"
    assert torch.equal(d2.betas, diffusion.betas) and m2.config == model.config
    assert d2.clip_x0 is True and load_checkpoint(path, clip_x0=False)[1].clip_x0 is False
    x, t, y = torch.randn(2, 1, 16, 16), torch.tensor([3, 50]), torch.tensor([1, 2])
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x, t, y), m2(x, t, y))
    # one flipped byte → refused before torch.load runs
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad = tmp_path / "bad.pt"
    bad.write_bytes(bytes(raw))
    (tmp_path / "bad.pt.sha256").write_text(sidecar.read_text().replace("m.pt", "bad.pt"))
    with pytest.raises(ValueError, match="sha256|hash"):
        load_checkpoint(bad)
    lone = tmp_path / "lone.pt"
    lone.write_bytes(path.read_bytes())
    with pytest.raises(ValueError, match="sha256|hash"):
        load_checkpoint(lone)


@pytest.mark.slow                    # ≈ 65 s (two processes): out of ./course.sh test --fast
def test_ddp_two_cpu_processes(tmp_path):
    """torchrun with 2 processes on the gloo backend: both ranks end with identical weights."""
    out = tmp_path / "ddp.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "course_utils.train", "--data", "synthetic", "--image-size", "8", "--limit", "256",
           "--channels", "8,16", "--steps", "8", "--batch-size", "16", "--T", "50", "--device", "cpu",
           "--no-progress", "--out", str(out), "--summary-dir", str(tmp_path / "summaries")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    # one file per rank: the two ranks print at the same moment, so stdout lines can interleave
    lines = [json.loads(p.read_text()) for p in sorted((tmp_path / "summaries").glob("summary_rank*.json"))]
    assert sorted(l["rank"] for l in lines) == [0, 1] and all(l["world_size"] == 2 for l in lines)
    assert lines[0]["param_digest"] == pytest.approx(lines[1]["param_digest"], rel=0, abs=1e-9)
    assert lines[0]["final_loss"] != lines[1]["final_loss"]        # each rank saw its own batches
    model, diffusion, meta = load_checkpoint(out)
    assert meta["world_size"] == 2 and diffusion.num_timesteps == 50


def test_bf16_autocast_path_runs_on_cpu():
    """The autocast branch (bf16 on CPU; the GPU uses the same code) trains and keeps fp32 weights."""
    from course_utils.train import resolve_amp_dtype
    assert resolve_amp_dtype("fp16", torch.device("cpu")) == torch.float16
    data = _synthetic_data(128, 8, seed=0)
    cfg = TrainConfig(steps=4, batch_size=32, amp="bf16", device="cpu", progress=False, log_every=2)
    res = train(tiny_unet(), GaussianDiffusion(linear_betas(50)), data, cfg)
    assert len(res.losses) == 4 and all(l == l for l in res.losses)
    assert all(p.dtype == torch.float32 for p in res.ema_model.parameters())


def test_auto_numerics_follow_the_cpu_flags(monkeypatch):
    """amp='auto' on a CPU: bf16 autocast exactly where the CPU flags say bf16 is native, fp32 elsewhere and on
    mps; explicit settings win; the notebooks' device line says the same in words."""
    import course_utils.train as tr

    cpu = torch.device("cpu")
    for native, expected in ((False, None), (True, torch.bfloat16)):
        monkeypatch.setattr(tr, "cpu_has_native_bf16", lambda native=native: native)
        assert tr.resolve_amp_dtype("auto", cpu) is expected
        assert tr.resolve_amp_dtype("off", cpu) is None
        assert tr.resolve_amp_dtype("bf16", cpu) is torch.bfloat16
        assert tr.resolve_amp_dtype("auto", torch.device("mps")) is None
        line = tr.describe_numerics("cpu")
        assert line == ("training under bf16 autocast (native on this CPU; weights and optimiser in fp32)" if native
                        else "training in fp32 (this CPU has no native bf16)")
        assert tr.describe_numerics("cpu", "off") == "training in fp32 (amp='off')"
        assert tr.describe_numerics("cpu", "bf16").startswith("training under bf16 autocast (amp='bf16'")


def test_the_shipped_recipes_train_in_fp32():
    """Rebuilding a shipped checkpoint on a CPU with native bf16 must not switch its numerics: every recipe
    pins amp='off' (the files were made in fp32)."""
    import inspect

    from course_utils import cascade, latent, text2image
    from course_utils.pretrained import RECIPES

    assert {name: r.train.amp for name, r in RECIPES.items()} == {name: "off" for name in RECIPES}
    for fn in (cascade.build_sr32, latent.build_ldm32, text2image._text16_setup):
        assert 'amp="off"' in inspect.getsource(fn)


def test_custom_loss_fn_is_used_and_validated():
    """``loss_fn`` replaces L_simple: a loss written independently (eq. 14 by hand) gives the same run."""
    data = _synthetic_data(128, 8, seed=0)
    diffusion = GaussianDiffusion(linear_betas(50))
    calls = []

    def my_loss(model, diff, x0, y, generator):
        calls.append(x0.shape[0])
        t = torch.randint(0, diff.num_timesteps, (x0.shape[0],), generator=generator, device=x0.device)
        eps = torch.randn(x0.shape, generator=generator, device=x0.device)
        ab = torch.cumprod(1 - linear_betas(50), 0).float()[t].view(-1, 1, 1, 1)
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        return ((model(xt, t) - eps) ** 2).mean()

    cfg = TrainConfig(steps=4, batch_size=32, seed=1, device="cpu", progress=False, log_every=2)
    a = train(tiny_unet(), diffusion, data, cfg, loss_fn=my_loss)
    b = train(tiny_unet(), diffusion, data, cfg)
    assert calls == [32] * 4
    assert a.losses == pytest.approx(b.losses, rel=1e-5)   # the package draws t, then ε, as my_loss does
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        train(tiny_unet(), diffusion, data, cfg, loss_fn="mse")
    with pytest.raises(ValueError, match="scalar tensor"):
        train(tiny_unet(), diffusion, data, cfg, loss_fn=lambda m, d, x0, y, g: (m(x0, torch.zeros(
            x0.shape[0], dtype=torch.long)) ** 2))


def test_callback_returning_true_stops_training_early():
    """A callback may stop training (benchmarks stop at a quality target); the result reflects the steps run."""
    data = _synthetic_data(128, 8, seed=0)
    seen = []

    def stop_at_4(state):
        seen.append(state.step)
        return state.step >= 4

    cfg = TrainConfig(steps=20, batch_size=32, device="cpu", progress=False, log_every=2)
    res = train(tiny_unet(), GaussianDiffusion(linear_betas(50)), data, cfg, callbacks=[stop_at_4, lambda s: None])
    assert seen == [2, 4] and len(res.losses) == 4
    assert res.images_per_second == pytest.approx(4 * 32 / res.wall_time)
    # a callback returning something truthy but not True (e.g. a figure handle) does not stop training
    res = train(tiny_unet(), GaussianDiffusion(linear_betas(50)), data,
                TrainConfig(steps=6, batch_size=32, device="cpu", progress=False, log_every=2),
                callbacks=[lambda s: "figure"])
    assert len(res.losses) == 6


def test_remove_ema_start_is_the_exponential_average_of_steps_2_to_n():
    """torch's AveragedModel EMA over a known sequence θ_1 … θ_n, corrected, equals the normalised weights
    (1 − β)·β^(n−s) over s = 2 … n computed directly."""
    from course_utils.train import remove_ema_start

    beta, n = 0.9, 12
    thetas = [torch.full((3,), float(s) ** 1.5) + torch.arange(3.0) * s for s in range(1, n + 1)]
    net = torch.nn.Linear(3, 1, bias=False)
    ema = torch.optim.swa_utils.AveragedModel(net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(beta),
                                              use_buffers=True)
    for th in thetas:
        with torch.no_grad():
            net.weight.copy_(th[None])
        ema.update_parameters(net)
    first = torch.nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        first.weight.copy_(thetas[0][None])
    corrected = remove_ema_start(ema.module, first, beta, n).weight.detach()[0]
    w = torch.tensor([(1 - beta) * beta ** (n - s) for s in range(2, n + 1)], dtype=torch.float64)
    direct = (w[:, None] * torch.stack(thetas[1:]).double()).sum(0) / w.sum()
    torch.testing.assert_close(corrected.double(), direct, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="decay"):
        remove_ema_start(ema.module, first, 1.0, n)
    with pytest.raises(ValueError, match="updates"):
        remove_ema_start(ema.module, first, beta, 1)


@pytest.mark.parametrize("warmup", [False, True])
def test_ema_of_train_is_the_recursion_over_the_recorded_raw_weights(warmup):
    """train's EMA equals e ← β_n e + (1 − β_n) θ_{n+1} computed here from the raw weights after every step,
    with β_n = β (no warm-up) or min(β, (1 + n) / (10 + n)) written out anew (warm-up)."""
    from course_utils.train import ema_decay_at

    beta, steps = 0.9, 8
    data = _synthetic_data(64, 8, 0)
    raw: list[dict] = []
    res = train(UNet(channels=(8, 16)), GaussianDiffusion(linear_betas(50)), data,
                TrainConfig(steps=steps, batch_size=16, device="cpu", progress=False, log_every=1, ema_decay=beta,
                            ema_warmup=warmup),
                callbacks=[lambda s: raw.append({k: v.detach().clone().double()
                                                 for k, v in s.model.state_dict().items()})])
    assert len(raw) == steps
    ema = dict(raw[0])
    for n, theta in enumerate(raw[1:], start=1):
        b = min(beta, (1 + n) / (10 + n)) if warmup else beta
        ema = {k: b * ema[k] + (1 - b) * theta[k] if theta[k].is_floating_point() else theta[k] for k in ema}
    got = res.ema_model.state_dict()
    for k, v in ema.items():
        if v.is_floating_point():
            torch.testing.assert_close(got[k].double(), v, rtol=1e-5, atol=1e-6)
    # the two differ: with warm-up the average follows the raw weights closely early on
    assert ema_decay_at(beta, 1, True) == pytest.approx(2 / 11) and ema_decay_at(beta, 1, False) == beta
    assert ema_decay_at(0.999, 10 ** 6, True) == 0.999
    with pytest.raises(ValueError, match="ema_warmup"):
        TrainConfig(ema_warmup="yes")
