"""The benchmark scripts (bench/): their FLOP counting, baselines and report logic, and a smoke run of each
measuring script at tiny sizes. No test here checks a speed: the figures live in BENCHMARKS.md."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import require_data

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import __main__ as report  # noqa: E402
from bench import baselines, common  # noqa: E402



def test_flop_counter_matches_the_convolution_formula():
    """FlopCounterMode's count equals 2·C_in·C_out·k²·H·W per image forward, and 3× that with backward
    (input and weight gradients), computed here by hand."""
    B, Cin, Cout, k, H = 3, 4, 8, 3, 10
    conv = nn.Conv2d(Cin, Cout, k, padding=1, bias=False)
    x = torch.randn(B, Cin, H, H, requires_grad=True)
    fwd = 2 * Cin * Cout * k * k * H * H * B
    assert common.count_flops(lambda: conv(x)) == fwd
    assert common.count_flops(lambda: conv(x).sum().backward()) == 3 * fwd
    lin = nn.Linear(16, 5)
    assert common.count_flops(lambda: lin(torch.randn(7, 16))) == 2 * 7 * 16 * 5


def test_markdown_table_and_results_round_trip(tmp_path):
    text = common.markdown_table(["a", "b"], [[1, 0.123456], ["x", None], [2, 12345.6]])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1 | 0.123 |", "| x | – |", "| 2 | 12,346 |"]
    common.write_result("demo_cpu", {"v": 1}, tmp_path)
    assert common.read_results(tmp_path) == {"demo_cpu": {"v": 1}}
    with pytest.raises(ValueError, match="warmup"):
        common.timed_steps(lambda: None, torch.device("cpu"), warmup=0, steps=0)


def test_diffusers_baseline_matches_our_parameter_count_and_plugs_into_our_samplers():
    pytest.importorskip("diffusers")
    from course_utils.diffusion import GaussianDiffusion
    from course_utils.models import count_parameters
    from course_utils.schedules import linear_betas

    target = count_parameters(baselines.our_unet())
    widths, n = baselines.matched_diffusers_widths(target)
    assert abs(n - target) / target < 0.05
    assert n == sum(p.numel() for p in baselines.diffusers_unet(widths).parameters())
    torch.manual_seed(0)
    model = baselines.DiffusersEps(baselines.diffusers_unet((16, 32))).eval()
    x = torch.randn(4, 1, 16, 16)
    t = torch.tensor([0, 10, 500, 999])
    y = torch.tensor([0, 3, 9, 10])
    assert model(x, t, y).shape == x.shape
    # the null class is the unconditional call, and guided sampling runs through the course's sampler
    assert torch.allclose(model(x, t), model(x, t, torch.full((4,), 10)))
    out = GaussianDiffusion(linear_betas(1000)).ddim_sample_loop(model, (4, 1, 16, 16), num_steps=2, y=y[:4] % 10,
                                                                   w=2.0, progress=False)
    assert out.shape == (4, 1, 16, 16) and torch.isfinite(out).all()


def test_baseline_loops_take_optimiser_steps(fashion_data):
    pytest.importorskip("diffusers")
    from course_utils.diffusion import GaussianDiffusion
    from course_utils.models import UNet
    from course_utils.schedules import linear_betas

    loader = baselines.fashion_mnist_loader(batch_size=8, image_size=16, limit=32)
    x, y = next(iter(loader))
    assert x.shape == (8, 1, 16, 16) and -1.0 <= float(x.min()) and float(x.max()) <= 1.0
    cpu = torch.device("cpu")
    for loop in (baselines.DiffusersLoop((16, 32), loader, cpu, total_steps=10, warmup_steps=0, lr=1e-3),
                 baselines.NaiveLoop(UNet(channels=(16, 32), num_classes=10), GaussianDiffusion(linear_betas(1000)),
                                     loader, cpu)):
        before = [p.detach().clone() for p in loop.model.parameters()]
        for _ in range(5):                                        # 5 steps: more than one epoch of 4 batches
            loop.step()
        losses = loop.flush_losses()
        assert len(losses) == 5 and all(torch.isfinite(torch.tensor(losses)))
        assert any(not torch.equal(a, b) for a, b in zip(before, loop.model.parameters()))


def _fake_results(speedup=None, at_least=None, gpu=None):
    machine = {"date": "2026-11-23T00:00:00+00:00", "device": "cpu", "device_name": "test CPU", "torch_threads": 2,
               "torch": "x", "diffusers": "y", "git_commit": "abc", "load_average_1min": 0.1}
    row = {"params": 10, "batch": 4, "images_per_s": 100.0, "gflop_per_image": 0.1, "dtype": "fp32", "mfu": 0.1,
           "note": ""}
    tp = {"machine": machine, "command": "c", "wall_time_s": 1, "diffusers_widths": [16, 32],
          "ratios": {"ours_vs_diffusers": 1.1, "ours_vs_naive": 1.2},
          "rows": [{**row, "name": "diffusers UNet2DModel tutorial loop"},
                   {**row, "name": "naive eager fp32 loop (our U-Net)"},
                   {**row, "name": "ours: course_utils.train (default)", "images_per_s": 110.0}]}
    curve = [{"step": 100, "train_s": 10.0, "class_agreement": 0.85}]
    ours = {"name": "ours", "params": 10, "amp": "bf16", "lr": 2e-3, "judged": "EMA", "curve": curve,
            "reached": curve[0], "train_s": 10.0, "time_to_quality_s": 10.0,
            "speedup_vs_diffusers": speedup, "speedup_vs_diffusers_at_least": at_least}
    base = {"name": "diffusers", "params": 11, "amp": "off", "lr": 1e-4, "judged": "raw", "train_s": 30.0,
            "curve": [{"step": 100, "train_s": 30.0, "class_agreement": 0.5}], "reached": None,
            "time_to_quality_s": None}
    tuned = {**base, "name": "diffusers-ourlr", "lr": 2e-3, "train_s": 15.0, "reached": curve[0],
             "curve": [{"step": 100, "train_s": 15.0, "class_agreement": 0.81}], "time_to_quality_s": 15.0}
    ttq = {"machine": machine, "command": "c", "wall_time_s": 1, "target": 0.8, "batch": 4, "budget_min": 1,
           "judge": {"per_class": 20, "ddim_steps": 20, "w": 2.0, "seed": 0, "eval_every_steps": 100},
           "contenders": [ours, base, tuned]}
    res = {"train_throughput_cpu": tp, "time_to_quality_cpu": ttq}
    if gpu:
        res["train_throughput_cuda"] = {**tp, "machine": {**machine, "device": "cuda", "device_name": "H100"},
                                        "ratios": gpu}
    return res


def test_report_states_which_goals_are_met(tmp_path):
    path = report.render(_fake_results(at_least=3.0), tmp_path / "B.md")
    text = path.read_text()
    assert "| time to quality ≥ 2× diffusers (CPU) | ≥ 3.0× (diffusers did not reach the target within its " \
           "budget) | met |" in text
    assert "| GPU images/s ≥ 3× naive loop | not measured (no GPU) | open |" in text
    assert "**GPU: not measured.**" in text
    assert "Not measured yet: run `python -m bench --only sampling`." in text
    text = report.render(_fake_results(speedup=1.5, gpu={"ours_vs_naive": 3.2, "ours_vs_diffusers": 1.4}),
                         tmp_path / "C.md").read_text()
    assert "| time to quality ≥ 2× diffusers (CPU) | 1.5× | not met |" in text
    assert "| (no goal) ours (bf16) vs the tutorial loop given our lr and warm-up | 1.5× | – |" in text
    assert "| GPU images/s ≥ 3× naive loop | 3.2× | met |" in text
    assert "| GPU images/s ≥ 1.5× diffusers | 1.4× | not met |" in text
    assert "GPU: not measured" not in text


def test_committed_report_is_rendered_from_the_committed_results(tmp_path):
    """BENCHMARKS.md is exactly what `python -m bench --render-only` makes of bench/results/: no hand edits."""
    rendered = report.render(None, tmp_path / "BENCHMARKS.md").read_text()
    assert (REPO / "BENCHMARKS.md").read_text() == rendered


def test_course_runtime_runs_lesson_07_in_its_fast_mode(tmp_path):
    from bench import course_runtime
    from course_utils import lessons
    env = course_runtime.lesson_env("07_final_assessment")
    assert env["COURSE_MODE"] == "fast" and Path(env["COURSE_ASSESSMENT_CHECKPOINT"]).exists()
    assert course_runtime.lesson_env("02_forward_diffusion") == {}
    # the registry's fast mode, scratch files in the run's own folder, without the tests' thread setting
    env = course_runtime.lesson_env("07_final_assessment", tmp_path)
    assert env == lessons.get("07").environment(tmp_path)
    assert Path(env["COURSE_ASSESSMENT_OUT"]).parent == tmp_path
    assert course_runtime.lesson_env("04_training_sampling") == {} and course_runtime.lesson_env("00_start_here") == {}
    with pytest.raises(ValueError, match="no lesson '99_nothing'"):
        course_runtime.lesson_env("99_nothing")


@pytest.mark.slow
def test_measuring_scripts_run_at_tiny_sizes(tmp_path):
    """Each measuring script end to end at tiny sizes, writing its JSON file (not a measurement).
    bench/train_throughput.py is run end to end by the GPU check's tiny mode (tests/unit/test_gpu_check.py),
    which asserts the same rows; it is not run a second time here."""
    require_data()
    pytest.importorskip("diffusers")
    from bench import sampling, time_to_quality

    assert sampling.main(["--samples", "6", "--ddpm-samples", "2", "--ddpm-steps", "10", "--steps", "2", "--etas",
                          "0,1", "--batch", "4", "--real-limit", "64", "--device", "cpu", "--out", str(tmp_path)]) == 0
    sp = json.loads((tmp_path / "sampling_cpu.json").read_text())
    assert [(r["sampler"], r["eta"], r["steps"], r["samples"]) for r in sp["rows"]] == [
        ("DDIM", 0.0, 2, 6), ("DDIM", 1.0, 2, 6), ("DDPM", 1.0, 10, 2)]
    assert sp["real_images"] == 64
    assert time_to_quality.main(["--limit", "512", "--budget-min", "0.01", "--eval-every", "3", "--per-class", "1",
                                 "--ddim-steps", "2", "--contenders", "ours,diffusers", "--device", "cpu",
                                 "--out", str(tmp_path)]) == 0
    tq = json.loads((tmp_path / "time_to_quality_cpu.json").read_text())
    assert [c["name"] for c in tq["contenders"]] == ["ours", "diffusers"]
    assert all(c["curve"] and c["steps_run"] >= 3 for c in tq["contenders"])


def test_sampling_ratio_runs_at_tiny_sizes_and_both_samplers_compute_ddim(tmp_path):
    """Every contender once at tiny sizes (not a measurement); the fp32 samplers agree on the images."""
    pytest.importorskip("diffusers")
    from bench import sampling_ratio

    assert sampling_ratio.main(["--images", "4", "--rounds", "1", "--steps", "50", "--device", "cpu", "--threads", "1",
                                "--out", str(tmp_path)]) == 0
    r = json.loads((tmp_path / "sampling_ratio_cpu.json").read_text())
    rows = {row["contender"]: row for row in r["rows"]}
    assert list(rows) == list(sampling_ratio.CONTENDERS)
    assert rows["ours"]["mean_abs_diff_to_ours_fp32"] == 0 and rows["diffusers"]["vs_diffusers_fp32"] == 1.0
    # same network, same x_T, DDIM-50 on nearly the same timesteps: the images agree to a few hundredths
    assert rows["diffusers"]["mean_abs_diff_to_ours_fp32"] < 0.05
    assert rows["ours + bf16"]["mean_abs_diff_to_ours_fp32"] < 0.05
    assert all(row["images_per_s"] > 0 for row in r["rows"])


def _fake_loss_weighting(seeds=(0,)):
    machine = _fake_results()["time_to_quality_cpu"]["machine"]
    rows = []
    for seed in seeds:
        for name, fd, bpd in (("L_simple", 10.0 + seed, 3.5), ("L_vlb", 20.0 + seed, 3.4)):
            rows.append({"name": name, "seed": seed, "train_s": 100.0, "frechet_distance": fd, "bits_per_dim": bpd,
                         "held_out_losses": {"L_simple": 0.05, "L_vlb": 0.01}})
    from bench import loss_weighting
    return {"machine": machine, "command": "python -m bench.loss_weighting", "wall_time_s": 1, "note": "beside x",
            "paper": loss_weighting.PAPER, "rows": rows,
            "train": {"model": "UNet channels (32, 64), unconditional", "steps": 600, "batch": 128, "lr": 2e-3,
                      "warmup_steps": 100, "ema_decay": 0.995, "amp": "bf16"},
            "sampler": {"name": "DDPM respaced to 50 steps", "samples": 500},
            "frechet": {"real_test_images": 1000},
            "bits_per_dim": {"test_images": 100, "estimate": "stratified: 50 of the 999 KL terms",
                             "decoder": "discretised Gaussian"},
            "ddpm16": {"steps": 3000, "frechet_distance": 9.0, "bits_per_dim": 3.6,
                       "held_out_losses": {"L_simple": 0.04, "L_vlb": 0.012}}}


def test_loss_weighting_section_shows_each_loss_ddpm16_and_the_paper(tmp_path):
    text = report.render({**_fake_results(), "loss_weighting_cpu": _fake_loss_weighting()}, tmp_path / "L.md").read_text()
    assert "## Loss weighting: the true bound vs L_simple (after Ho et al. 2020, Table 1)" in text
    assert "| L_simple (600 steps, 1 seed) | 10 | 3.5 | 0.05 | 0.01 | 100 |" in text
    assert "| L_vlb (600 steps, 1 seed) | 20 | 3.4 | 0.05 | 0.01 | 100 |" in text
    assert "| ddpm16, shipped (L_simple, 3000 steps) | 9 | 3.6 | 0.04 | 0.012 | – |" in text
    assert "| paper, CIFAR-10: L (true bound, fixed isotropic Σ) | FID 13.51 | ≤ 3.7 | – | – | – |" in text
    assert "(one seed: no range)" in text and "Note: beside x." in text
    two = report.render({"loss_weighting_cpu": _fake_loss_weighting(seeds=(0, 1))}, tmp_path / "M.md").read_text()
    assert "| L_vlb (600 steps, 2 seeds) | 20 – 21 | 3.4 | 0.05 | 0.01 | 100 |" in two
    assert "(ranges over seeds)" in two
    none = report.render({}, tmp_path / "N.md").read_text()
    assert "Not measured yet: run `python -m bench --only loss_weighting`." in none


@pytest.mark.slow
def test_loss_weighting_runs_at_tiny_sizes(tmp_path):
    """bench/loss_weighting.py end to end at tiny sizes (not a measurement): both losses train, are sampled and
    scored, and ddpm16 gets its bits/dim."""
    require_data()
    from bench import loss_weighting
    assert loss_weighting.main(["--steps", "3", "--limit", "512", "--samples", "4", "--sample-steps", "3",
                                "--real", "16", "--bpd-images", "2", "--bpd-terms", "2", "--device", "cpu",
                                "--out", str(tmp_path)]) == 0
    r = json.loads((tmp_path / "loss_weighting_cpu.json").read_text())
    assert [row["name"] for row in r["rows"]] == ["L_simple", "L_vlb"]
    assert all(row["bits_per_dim"] > 0 and row["frechet_distance"] > 0 for row in r["rows"])
    assert r["ddpm16"]["bits_per_dim"] > 0 and r["bits_per_dim"]["kl_terms_per_image"] == 2


def _contender(name, amp, times, changes=()):
    """A recipe contender whose runs reached the target at ``times`` (None: not within the budget of 100 s)."""
    runs = [{"seed": i, "curve": [{"step": 50, "class_agreement": 0.85 if t else 0.5}],     # 500 steps in t s
             "reached": {"step": 500, "train_s": t} if t else None, "steps_run": 500, "train_s": t or 100.0}
            for i, t in enumerate(times)]
    return {"name": name, "params": 1, "amp": amp, "judged": "EMA", "changes": list(changes), "runs": runs}


def test_recipe_verdicts_need_ranges_that_part_and_goal_uses_medians():
    from bench import time_to_quality as ttq

    res = {"target": 0.8, "judge": {"eval_every_steps": 50}, "contenders": [
        _contender("ours", "off", [40, 50]), _contender("ours+min-snr", "off", [20, 30], ["min-SNR-5"]),
        _contender("ours+cosine", "off", [45, 70], ["cosine"]), _contender("ours+T250", "off", [60, 80]),
        _contender("ours+v-pred", "off", [30, None]), _contender("diffusers-ourlr", "off", [90, 110])]}
    cs = {c["name"]: c for c in res["contenders"]}
    ref = cs["ours"]
    # one judging interval of ours: 50 steps × 45 s / 500 steps = 4.5 s; of ours+T250: 50 × 70 / 500 = 7 s
    assert ttq._verdict(cs["ours+min-snr"], ref, 50) == "pays"              # 30 < 40 − 4.5
    assert ttq._verdict(cs["ours+min-snr"], ref, 150) == "within the noise" # 30 ≥ 40 − 13.5: too coarse to tell
    assert ttq._verdict(cs["ours+cosine"], ref, 50) == "within the noise"   # 45–70 overlaps 40–50
    assert ttq._verdict(cs["ours+T250"], ref, 50) == "costs"                # 60 − 7 > 50
    assert ttq._verdict(cs["ours+T250"], ref, 100) == "within the noise"    # 60 − 14 ≤ 50
    assert ttq._verdict(cs["ours+v-pred"], ref, 50) == "not reached in every run"
    assert ttq._verdict(ref, ref, 50) == "reference"
    s = ttq.seeded_summary(cs["ours+min-snr"])
    assert (s["median"], s["lo"], s["hi"]) == (25, 20, 30)
    best = ttq.best_vs_diffusers(res)
    assert best["bf16"] is None                                         # no bf16 runs at all
    assert best["off"] == {"name": "ours+min-snr", "speedup": round(100 / 25, 2), "worst_case": round(90 / 30, 2),
                           "ref": "diffusers-ourlr"}
    table = ttq.contenders_table(res)
    assert "| ours+min-snr | min-SNR-5 | off | 2 | 25 s | 20–30 s (20, 30) |" in table
    assert "| ours+v-pred |" in table and "> 100" in table             # the run that did not reach it
    assert "4.00×" in table                                             # 100 / 25 against diffusers-ourlr


def test_recipe_contenders_parse_and_run_at_tiny_sizes(tmp_path):
    """Every kind of recipe change parses into the run's settings, a typo is refused before any training, and a
    seeded run round-robin writes two runs per contender (not a measurement)."""
    require_data()
    pytest.importorskip("diffusers")
    from bench import time_to_quality as ttq

    r = ttq.parse_recipe("ours+ema-warmup+min-snr+T250+lr4e-3+wu200", "bf16")
    assert (r["amp"], r["ema_warmup"], r["loss"], r["T"], r["lr"], r["warmup_steps"]) == (
        "bf16", True, "min-snr", 250, 4e-3, 200)
    assert ttq.parse_recipe("ours-fp32+v-pred+cosine", "bf16")["amp"] == "off"
    assert ttq.parse_recipe("ours+ema-warmup+x0-pred", "off")["loss"] == "x0"
    # the placement contenders: the model's fields, at about the recipe's parameter count (what the doc promises)
    from course_utils.models import count_parameters

    base = count_parameters(baselines.our_unet())
    for name, fields in (("ours+attn", {"attention": True}), ("ours+ch16-32-64", {"channels": (16, 32, 64)})):
        r = ttq.parse_recipe(name, "off")
        assert r["model"] == fields and r["loss"] == "eps" and len(r["changes"]) == 1
        model = baselines.our_unet(**r["model"])
        assert all(getattr(model.config, k) == v for k, v in fields.items())
        assert abs(count_parameters(model) / base - 1) < 0.05
    d = ttq.recipe_diffusion(ttq.parse_recipe("ours+T250", "off"))
    assert d.num_timesteps == 250 and abs(float(d.betas[-1]) - 0.08) < 1e-6      # 0.02 · 1000/250
    for bad in ("ours+nope", "theirs", "ours+T", "ours+v-pred+min-snr", "ours+x0-pred+v-pred", "ours+ch32"):
        with pytest.raises(ValueError):
            ttq.parse_recipe(bad, "off")
    with pytest.raises(ValueError, match="unknown contender"):
        ttq.main(["--seeds", "0", "--contenders", "ours,diffuserz", "--limit", "64", "--out", str(tmp_path)])
    assert ttq.main(["--limit", "512", "--budget-min", "0.01", "--eval-every", "3", "--per-class", "1",
                     "--ddim-steps", "2", "--seeds", "0,1", "--contenders", "ours,ours+v-pred,ours+min-snr,diffusers-ourlr",
                     "--name", "ttqc_cpu", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "ttqc_cpu.json").read_text())
    assert [c["name"] for c in res["contenders"]] == ["ours", "ours+v-pred", "ours+min-snr", "diffusers-ourlr"]
    # the record says what ran: the trainer's "auto" resolved (bf16 only where this CPU runs it natively)
    assert res["contenders"][0]["amp"] == ("bf16" if res["cpu_native_bf16"] else "off")
    assert all([run["seed"] for run in c["runs"]] == [0, 1] for c in res["contenders"])
    md = report.render({"time_to_quality_contenders_cpu": res}, tmp_path / "B.md").read_text()
    assert "## Time to quality: what in the recipe pays (CPU)" in md and "| ours+v-pred |" in md
    if not res["cpu_native_bf16"]:
        assert "has no native bf16" in md


def test_scaling_runs_at_tiny_sizes(tmp_path):
    """The trainer rows and a parallel grading run of two lesson 02 hand-ins (solution: full marks, blank: 0)."""
    require_data()
    from course_utils.autograde import sandbox

    if not sandbox.available()[0]:
        pytest.skip("no bubblewrap here: the grading half needs it")
    from bench import scaling

    assert scaling.main(["--quick", "--submissions", "2", "--jobs", "2", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "scaling_cpu.json").read_text())
    assert [(r["batch"], r["image_size"]) for r in res["trainer"]] == [(32, 16), (64, 16)]
    assert all(len(r["images_per_s"]) == 2 and r["median"] > 0 for r in res["trainer"])
    g = res["grading"][0]
    assert (g["submissions"], g["jobs"], g["scores_as_expected"]) == (2, 2, True)
    md = report.render({"scaling_cpu": res}, tmp_path / "B.md").read_text()
    assert "## Scaling: the trainer and the grading command" in md and "| 2 | 2 |" in md


def test_seconds_to_quality_scale_with_image_size_at_tiny_sizes(tmp_path):
    """The quality part trains and judges at each size (here 16 and 28 px), writes its own record (the speed
    record is not overwritten) and renders in the scaling section; a run that misses the target says so."""
    require_data()
    from bench import scaling

    assert scaling.main(["--part", "quality", "--quick", "--out", str(tmp_path)]) == 0
    assert not (tmp_path / "scaling_cpu.json").exists()
    q = json.loads((tmp_path / "scaling_quality_cpu.json").read_text())
    assert [r["image_size"] for r in q["quality"]] == [16, 28] and q["recipe"] == scaling.QUALITY_RECIPE
    assert all(len(r["runs"]) == 1 and r["runs"][0]["steps_run"] > 0 for r in q["quality"])
    fake = json.loads(json.dumps(q))                       # one run that reached, one that did not
    fake["quality"][0]["runs"] = [{**fake["quality"][0]["runs"][0], "seed": s, "reached": reach}
                                  for s, reach in ((0, {"step": 150, "train_s": 40.0}), (1, None))]
    table = scaling.quality_table(fake)
    assert "| (base point) | 16 |" in table and "40 (40–40); 1 of 2 runs > 0.02 min" in table
    scaling_rec = {"benchmark": "scaling", "machine": q["machine"], "amp": "off", "base": q["base"], "block": 2,
                   "blocks": 2, "trainer": [], "grading": []}
    md = report.render({"scaling_cpu": scaling_rec, "scaling_quality_cpu": q}, tmp_path / "B.md").read_text()
    assert "Seconds to quality: training time" in md and "| image_size | 28 |" in md


def test_an_appending_time_to_quality_run_keeps_the_files_record():
    """--append chains the commands, keeps the first run's machine line and the file's note, adds up the time."""
    from bench.time_to_quality import _carry_append

    old = {"command": "first", "machine": {"date": "d1"}, "wall_time_s": 10.0, "earlier_wall_time_s": 5.0,
           "note": "written by hand", "appended_runs": [{"command": "second", "machine": {"date": "d2"}}]}
    out = {"command": "third", "machine": {"date": "d3"}}
    _carry_append(out, old)
    assert out["command"] == "first && third" and out["machine"] == {"date": "d1"}
    assert out["earlier_wall_time_s"] == 15.0 and out["note"] == "written by hand"
    assert [a["command"] for a in out["appended_runs"]] == ["second", "third"]


def test_our_unet_width_scales_the_recipe_the_scaling_table_records():
    """baselines.our_unet(width) is the scaling table's model: width 1 the cfg16 recipe; the recorded widths'
    channels and parameter counts rebuild from it (bench/results/scaling_cpu.json); a bad width is refused."""
    import json

    from course_utils.models import count_parameters
    from course_utils.pretrained import RECIPES

    assert baselines.our_unet().config == RECIPES["cfg16"].model
    rows = json.loads((common.REPO / "bench" / "results" / "scaling_cpu.json").read_text())["trainer"]
    for width in sorted({r["width"] for r in rows}):
        row = next(r for r in rows if r["width"] == width)
        model = baselines.our_unet(width)
        assert list(model.config.channels) == row["channels"] and count_parameters(model) == row["params"]
    groups = RECIPES["cfg16"].model.norm_groups
    assert all(c % groups == 0 for c in baselines.our_unet(1.3).config.channels)
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="width"):
            baselines.our_unet(bad)
