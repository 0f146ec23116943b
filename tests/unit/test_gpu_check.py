"""bench/gpu_check.py, the GPU check of issue 21: its tiny mode end to end on the CPU (every section writes its
file with the keys the report reads, into a temp folder, never bench/results), its refusal without CUDA, what
it carries to the GPU machine, and the report's GPU section (absent without *_cuda files). No speed is
asserted: on a GPU the script measures, here it only has to run."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import gpu_check  # noqa: E402
from bench import __main__ as report  # noqa: E402


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny run of every section (shared by the tests that read its files)."""
    from conftest import require_data
    require_data()
    pytest.importorskip("diffusers")
    pytest.importorskip("nbclient")
    out = tmp_path_factory.mktemp("gpu-check")
    mirror = tmp_path_factory.mktemp("gpu-check-mirror")
    rc = gpu_check.main(["--tiny", "--results", str(out), "--mirror", str(mirror)])
    return rc, out, mirror


@pytest.mark.slow
def test_tiny_mode_runs_every_section_and_writes_its_file(tiny_run):
    rc, out, mirror = tiny_run
    summary = json.loads((out / "gpu_check_cpu.json").read_text())
    assert [s["section"] for s in summary["sections"]] == list(gpu_check.SECTIONS)
    assert {s["section"]: s["status"] for s in summary["sections"]} == dict.fromkeys(gpu_check.SECTIONS, "ok"), \
        [(s["section"], s.get("tail")) for s in summary["sections"] if s["status"] != "ok"]
    assert rc == 0 and summary["tiny"] is True
    written = {p.name for p in out.glob("*.json")}
    # (tiny: sampling of cfg16 only; on a GPU ddpm16's sampling_cuda.json too)
    assert written == {"gpu_check_cpu.json", "gpu_tests_cpu.json", "train_throughput_cpu.json", "airbench_cpu.json",
                       "sampling_cfg16_cpu.json", "course_runtime_cpu.json"}
    # every file is copied to the mirror (the device tool's $OUT) as it is written: at most 8 files come back
    assert {p.name for p in mirror.iterdir()} == written and len(written) + 1 <= 8   # + gpu_check.log

    tests = json.loads((out / "gpu_tests_cpu.json").read_text())
    assert len(tests["checks"]) >= 10
    assert all(c["status"] == "passed" for c in tests["checks"]), [c for c in tests["checks"] if c["status"] != "passed"]
    assert tests["pytest"]["status"] == "passed" and tests["pytest"]["passed"] > 0 and tests["pytest"]["failures"] == 0

    tp = json.loads((out / "train_throughput_cpu.json").read_text())
    assert tp["image_size"] == 28 and {r["name"] for r in tp["rows"]} >= {
        "diffusers UNet2DModel tutorial loop", "naive eager fp32 loop (our U-Net)", "ours: course_utils.train (default)"}
    assert all(r["images_per_s"] > 0 and r["gflop_per_image"] > 0 and 0 < r["mfu"] for r in tp["rows"]) and tp["ratios"]["ours_vs_naive"] > 0

    air = json.loads((out / "airbench_cpu.json").read_text())
    assert air["config"]["image_size"] == 28 and air["curve"] and air["final"]["samples"] == 20
    assert 0 <= air["final"]["class_agreement"] <= 1 and air["final"]["frechet_distance"] > 0
    assert set(air["reached"]) == {"class_agreement_at_s", "frechet_distance_at_s", "both_at_s"}
    assert air["verdict"] in ("met", "not met") and air["steps_run"] >= 1

    sp = json.loads((out / "sampling_cfg16_cpu.json").read_text())
    assert sp["checkpoint"] == "cfg16" and sp["guidance_w"] == 2.0
    assert [(r["sampler"], r["steps"], r["samples"]) for r in sp["rows"]] == [("DDIM", 2, 4), ("DDPM", 10, 2)]   # tiny: a 10-step respaced DDPM row
    assert all(r["images_per_s"] > 0 and r["frechet_distance"] > 0 for r in sp["rows"])

    lessons = json.loads((out / "course_runtime_cpu.json").read_text())
    assert [(r["lesson"], r["status"]) for r in lessons["rows"]] == [("stub", "ok")]
    assert lessons["rows"][0]["device_line"] == "running on cpu" and lessons["rows"][0]["cells_run"] == 1


@pytest.mark.slow
def test_tiny_report_renders_the_gpu_section(tiny_run):
    _, out, _ = tiny_run
    text = (out / "BENCHMARKS.md").read_text()            # the tiny files stand in for *_cuda ones
    for heading in ("## On a GPU (`bench/gpu_check.sh`)", "### Goals on the GPU", "### Unit tests on the GPU",
                    "### Lessons in their GPU mode", "### Time to quality on the GPU", "### Sampling on the GPU",
                    "Image size 28 px (not 16 px)"):
        assert heading in text
    assert "| every lesson's GPU mode runs without code changes | 1/1 ran to the end | met |" in text
    # a GPU run cut short after the first loop (partial file: later rows and the ratios missing) still renders
    from bench.common import read_results
    res = {k.replace("_cpu", "_cuda"): v for k, v in read_results(out).items()}
    tp = res["train_throughput_cuda"]
    tp["rows"], tp["ratios"] = tp["rows"][:1], {"ours_vs_diffusers": None, "ours_vs_naive": None}
    text = report.render(res, out / "partial.md").read_text()
    assert "| GPU images/s ≥ 3× naive loop | not measured (the GPU run stopped before this loop) | open |" in text
    assert "| MFU ≥ 30 % (default trainer) | not measured | open |" in text


def test_tiny_mode_never_writes_into_bench_results(capsys):
    with pytest.raises(SystemExit) as err:
        gpu_check.main(["--tiny", "--results", str(REPO / "bench" / "results")])
    assert err.value.code == 2 and "--tiny never writes into bench/results" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the check would run")
def test_refuses_without_a_cuda_device(capsys):
    assert gpu_check.main([]) == 2
    assert "no CUDA device here" in capsys.readouterr().err and "--tiny" in gpu_check.NO_CUDA


def test_unknown_section_is_named(capsys):
    with pytest.raises(SystemExit):
        gpu_check.main(["--tiny", "--only", "unit_tests,warp_drive"])
    assert "warp_drive" in capsys.readouterr().err


def test_carry_holds_what_the_gpu_image_lacks_and_nothing_it_has():
    pytest.importorskip("diffusers")
    pytest.importorskip("nbclient")
    pins = gpu_check.carry_packages()
    assert {"diffusers", "nbclient", "nbformat", "ipykernel", "ipywidgets", "jupyter-client", "pyzmq"} <= set(pins)
    assert not set(pins) & {"torch", "torchvision", "numpy", "matplotlib", "pytest", "sympy", "einops", "tqdm"}
    assert not set(pins) & gpu_check.CARRY_SKIP
    from importlib import metadata
    assert pins["diffusers"] == metadata.version("diffusers")
    with pytest.raises(ValueError, match="not installed here"):
        gpu_check.carry_packages(roots=("no-such-package-anywhere",))


def test_report_has_no_gpu_section_without_cuda_files():
    assert gpu_check.report_lines({}) == []
    assert gpu_check.report_lines({"train_throughput_cpu": {}}) == []


def test_gpu_peaks_are_the_data_sheet_figures():
    h200 = __import__("bench.common", fromlist=["GPU_PEAK_FLOPS"]).GPU_PEAK_FLOPS["H200"]
    assert h200 == {"bf16": 989.4e12, "fp16": 989.4e12, "tf32": 494.7e12, "fp32": 66.9e12}
