"""Run every benchmark and regenerate BENCHMARKS.md (the one command):

    python -m bench                      # all benchmarks on this machine (2-core CPU: about 4 h), then the report
    python -m bench --render-only        # rewrite BENCHMARKS.md from bench/results/*.json
    python -m bench --only sampling,course_runtime
    python -m bench --device cuda --only train_throughput   # GPU figures land beside the CPU ones

``./course.sh bench`` does the same after setting up the environment. Each benchmark writes
``bench/results/<name>_<device>.json`` (date, machine, command, raw figures); the report is rendered
from those files only, so a figure in BENCHMARKS.md always has its measurement file beside it.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from . import (course_runtime, gpu_check, loss_weighting, sampling, sampling_ratio, scaling, time_to_quality,
               train_throughput)
from .common import REPO, markdown_table, read_results

# name → (main, its arguments, the extra arguments of a quick run)
BENCHES = {
    "train_throughput": (train_throughput.main, ["--device", "{device}"], ["--quick"]),
    "time_to_quality": (time_to_quality.main, ["--device", "{device}"],
                        ["--limit", "2048", "--budget-min", "0.2", "--eval-every", "10", "--per-class", "2",
                         "--ddim-steps", "4"]),
    "time_to_quality_contenders": (
        time_to_quality.main,
        ["--device", "{device}", "--name", "time_to_quality_contenders_{device}", "--seeds", "0,1", "--eval-every", "50",
         "--budget-min", "5", "--contenders", ",".join(time_to_quality.CONTENDERS)],
        ["--limit", "2048", "--budget-min", "0.1", "--eval-every", "10", "--per-class", "2", "--ddim-steps", "4",
         "--seeds", "0", "--contenders", "ours,ours+min-snr,diffusers-ourlr"]),
    "sampling": (sampling.main, ["--device", "{device}"],
                 ["--samples", "32", "--ddpm-samples", "4", "--steps", "10", "--etas", "0"]),
    "sampling_ratio": (sampling_ratio.main, ["--device", "{device}"], ["--images", "4", "--rounds", "1", "--steps", "2"]),
    "course_runtime": (course_runtime.main, [], ["--lessons", "02_forward_diffusion", "--no-grading"]),
    "scaling": (scaling.main, ["--device", "{device}"], ["--quick", "--submissions", "2", "--jobs", "2"]),
    "scaling_quality": (scaling.main, ["--device", "{device}", "--part", "quality", "--seeds", "0,1"], ["--quick"]),
    "loss_weighting": (loss_weighting.main, ["--device", "{device}", "--amp", "bf16"],
                       ["--steps", "4", "--limit", "1024", "--samples", "8", "--sample-steps", "5", "--real", "64",
                        "--bpd-images", "4", "--bpd-terms", "3"]),
}

GOALS_NOTE = ("Goals from the performance issue: time to quality ≥ 2× the diffusers baseline on CPU; on a GPU "
              "≥ 3× the naive loop and ≥ 1.5× diffusers in training images/s.")


def _machine_line(r: dict) -> str:
    m = r["machine"]
    return (f"Measured {m['date']} on {m['device_name']} ({m['device']}, {m['torch_threads']} torch threads, "
            f"load average {m.get('load_average_1min')} at the start), torch {m['torch']}, diffusers "
            f"{m.get('diffusers')}, commit {m.get('git_commit')}. Command: `{str(r.get('command')).strip()}` "
            f"({r.get('wall_time_s')} s).")


def _section_throughput(results: dict) -> list[str]:
    out = ["## Training throughput", "",
           "Class-conditional ε-model, 16 px FashionMNIST, same batch, same device, same process; images/s after "
           "warm-up. FLOPs: torch's FlopCounterMode over one forward + backward pass (matmuls and convolutions). "
           "MFU: achieved model FLOP/s ÷ peak (GPU: data sheet; CPU: the best measured matmul of that dtype, "
           "so a CPU MFU is relative to what this CPU's BLAS reaches, not to a theoretical peak). Rows "
           "\"ours + …\" change one TrainConfig option each: the fast-path experiments. Every loop is measured in "
           "several rounds, round-robin; \"range\" is the lowest and highest round. On a shared virtual machine "
           "a difference smaller than the ranges is noise, not an effect.", ""]
    found = False
    for key in sorted(k for k in results if k.startswith("train_throughput_") and not k.endswith("_quick")):
        r = results[key]
        found = True
        out += [f"### {r['machine']['device'].upper()}: {r['machine']['device_name']}", "", _machine_line(r), ""]
        if r.get("image_size", 16) != 16:                 # the GPU check measures at 28 px
            out += [f"Image size {r['image_size']} px (not 16 px), batch {r['batch']}.", ""]
        out += [train_throughput.table(r), "",
                f"Ratios (default trainer): **{r['ratios']['ours_vs_diffusers']}× diffusers**, "
                f"**{r['ratios']['ours_vs_naive']}× the naive loop**. Diffusers widths {tuple(r['diffusers_widths'])}.",
                ""]
    if not found:
        out += ["Not measured yet: run `python -m bench --only train_throughput`.", ""]
    if "train_throughput_cuda" not in results:
        out += ["**GPU: not measured.** No GPU was available to the machine that produced this report; run "
                "`python -m bench --device cuda --only train_throughput,sampling` on one.", ""]
    return out


def _start(title: str, results: dict, key: str, bench: str) -> tuple[list[str], dict | None]:
    """A section's heading, and its results (None: the section says how to measure them)."""
    out = [f"## {title}", ""]
    r = results.get(key)
    if r is None:
        out += [f"Not measured yet: run `python -m bench --only {bench}`.", ""]
    return out, r


def _section_ttq(results: dict) -> list[str]:
    out, r = _start("Time to quality (CPU)", results, "time_to_quality_cpu", "time_to_quality")
    if r is None:
        return out
    j = r["judge"]
    out += [f"Wall time of training (evaluations excluded) until class agreement ≥ {r['target']:.0%} with the shipped "
            f"classifier: {j['per_class']} samples per class, DDIM-{j['ddim_steps']} (η = 0, x̂0 clipped), guidance "
            f"w = {j['w']}, seed {j['seed']}, judged every {j['eval_every_steps']} steps; batch {r['batch']}; "
            f"training budget per contender: "
            f"{', '.join(str(c['name']) + ' ' + str(c.get('budget_min', r['budget_min'])) + ' min' for c in r['contenders'])}. With {10 * j['per_class']} samples one evaluation has a "
            f"standard error of about {100 * (0.8 * 0.2 / (10 * j['per_class'])) ** 0.5:.1f} points near 80 %.", "",
            _machine_line(r), "", time_to_quality.table(r), ""]
    for c in r["contenders"]:
        curve = ", ".join(f"{p['step']}: {p['class_agreement']:.0%}" for p in c["curve"])
        out.append(f"- {c['name']} (step: agreement): {curve}")
    return out + [""]


def _section_contenders(results: dict) -> list[str]:
    out, r = _start("Time to quality: what in the recipe pays (CPU)", results, "time_to_quality_contenders_cpu",
                    "time_to_quality_contenders")
    if r is None:
        return out
    j = r["judge"]
    out += [f"Each contender changes one thing against our recipe as it was before this benchmark (peak lr "
            f"{r['recipe']['lr']:g}, {r['recipe']['warmup_steps']} warm-up steps, a constant EMA decay "
            f"{r['recipe']['ema_decay']}, ε-prediction, linear schedule, T = 1000); a row that names several changes "
            f"combines them. What paid is kept: `TrainConfig` warms its EMA up by default since (ema-warmup), and "
            f"v-prediction is `course_utils.objectives.loss_v` with `EpsFromV` for the samplers (the lessons keep "
            f"ε-prediction; lesson 04 teaches both findings). Time to quality as above (class "
            f"agreement ≥ {r['target']:.0%}, {j['per_class']} samples per class, DDIM-{j['ddim_steps']}, w = {j['w']}, "
            f"judged every {j['eval_every_steps']} steps, training time only), once per seed "
            f"({', '.join(map(str, j['seeds']))}: the seed sets the initial weights, the batches and the judge's noise), "
            f"seeds taken round-robin over the contenders. \"Pays\" or \"costs\" only where the range over seeds "
            f"and the range of ours in the same numerics part by more than one judging interval ({j['eval_every_steps']} "
            f"steps: the target was crossed somewhere within the interval before it was seen); otherwise the "
            f"difference is within the noise. "
            f"The diffusers rows are the tutorial's loop (UNet2DModel, DDPMScheduler, AdamW, cosine schedule with "
            f"warm-up, DataLoader) given our peak lr and warm-up, with the same batch ({r['batch']}) and a matched "
            f"parameter count; \"same autocast\" compares bf16 with bf16 and fp32 with fp32.", "",
            _machine_line(r), "", time_to_quality.contenders_table(r), ""]
    out += [f"Not run: {name} ({why})." for name, why in r.get("skipped", {}).items()] + ([""] if r.get("skipped") else [])
    if r.get("note"):
        out += [f"Note: {r['note']}", ""]
    return out


def _per_device(title: str, results: dict, bench: str, describe) -> list[str]:
    """A section with one block per device the benchmark ``bench`` was measured on (CPU, then GPU):
    ``describe(result) -> list[str]``, or how to measure it when neither file exists."""
    keys = [k for k in (f"{bench}_cpu", f"{bench}_cuda") if k in results]
    out, _ = _start(title, results, keys[0] if keys else f"{bench}_cpu", bench)
    for key in keys:
        out += describe(results[key])
    return out


def _section_sampling(results: dict) -> list[str]:
    def describe(r: dict) -> list[str]:
        return [f"Checkpoint `{r['checkpoint']}` (built by `{r['checkpoint_command']}`), x̂0 clipped, batch "
                f"{r['batch']}, seed {r['seed']}; Fréchet distance in the shipped classifier's feature space against "
                f"the {r['real_images']} test images. One network evaluation costs "
                f"{r['gflop_per_forward_image']} GFLOP per image.", "", _machine_line(r), "",
                sampling.table(r), ""]
    return _per_device("Sampling: DDPM vs DDIM (after Song et al. 2021, Table 1)", results, "sampling", describe)


def _section_sampling_ratio(results: dict) -> list[str]:
    def describe(r: dict) -> list[str]:
        return [f"`{r['checkpoint']}`, DDIM-{r['steps']} with classifier-free guidance w = {r['w']} (the conditional and "
                f"null passes in one batch: {r['network_evaluations_per_image']} network evaluations per image), x̂0 "
                f"clipped, {r['images_per_round']} images per call, {r['rounds']} rounds round-robin after a warm-up; "
                "one option per row. The last column compares each sampler's images with ours in fp32 from the same "
                "x_T (diffusers steps to t − T/S, ours to the next of linspace(0, T − 1, S): a small difference is "
                "expected, a large one would be a bug).", "", _machine_line(r), "", sampling_ratio.table(r), ""]
    return _per_device("Sampling speed: ours vs diffusers' DDIMScheduler on the same network", results,
                       "sampling_ratio", describe)


def _section_loss_weighting(results: dict) -> list[str]:
    out, r = _start("Loss weighting: the true bound vs L_simple (after Ho et al. 2020, Table 1)", results,
                    "loss_weighting_cpu", "loss_weighting")
    if r is None:
        return out
    tr, s, b = r["train"], r["sampler"], r["bits_per_dim"]
    seeds = sorted({row["seed"] for row in r["rows"]})
    out += [f"Two U-Nets ({tr['model']}) trained on 16 px FashionMNIST with `course_utils.train`, "
            f"identical except for the loss: L_simple, or `course_utils.likelihood.loss_vlb` (the true bound's "
            f"weights λ_t = β_t² / (2σ_t² α_t (1 − ᾱ_t)), σ_t² = β̃_t); {tr['steps']} steps, batch {tr['batch']}, "
            f"lr {tr['lr']}, {tr['warmup_steps']} warm-up steps, EMA {tr['ema_decay']} (its start removed), "
            f"amp {tr['amp']}, seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
            f"{' (one seed: no range)' if len(seeds) == 1 else ' (ranges over seeds)'}. Fréchet distance: "
            f"{s['samples']} samples ({s['name']}, x̂0 clipped) against {r['frechet']['real_test_images']} test "
            f"images in the shipped classifier's feature space. Bits/dim: the negative ELBO of {b['test_images']} "
            f"test images ({b['estimate']}; {b['decoder']}). Held-out losses: each loss on "
            f"{r['frechet']['real_test_images']} test images. The paper's CIFAR-10 rows are for orientation only "
            "(other data, other metric).", "", _machine_line(r), ""]
    if r.get("note"):
        out += [f"Note: {r['note']}.", ""]
    out += [loss_weighting.table(r), ""]
    return out


def _section_scaling(results: dict) -> list[str]:
    out, r = _start("Scaling: the trainer and the grading command as the work grows (CPU)", results, "scaling_cpu",
                    "scaling")
    if r is None:
        return out
    trainer, grading = scaling.tables(r)
    b = r["base"]
    out += [_machine_line(r), ""]
    if r["trainer"]:
        out += [f"Trainer: `course_utils.train` (EMA, clipping and schedule included), autocast {r['amp']}, one "
                f"factor grown at a time from the base point (the shipped `cfg16` model, {b['image_size']} px, batch "
                f"{b['batch']}); {r['blocks']} timed blocks of {r['block']} steps after one warm-up block, images/s "
                "median and range over the blocks.", "", trainer, ""]
    q = results.get("scaling_quality_cpu")
    if q is None:
        out += ["Seconds to quality as the image size and the width grow: not measured yet, run "
                "`python -m bench --only scaling_quality`.", ""]
    else:
        j, seeds = q["judge"], sorted({run["seed"] for row in q["quality"] for run in row["runs"]})
        out += [f"Seconds to quality: training time (evaluations excluded) until class agreement ≥ {q['target']:.0%}, "
                f"judged as in the time-to-quality sections ({j['per_class']} guided DDIM-{j['ddim_steps']} samples "
                f"per class, w = {j['w']}, every {j['eval_every_steps']} steps; the shipped classifier resizes every "
                f"sample to 28 px, so one judge serves every size), recipe `{q['recipe']}` (the best on the "
                f"two-level U-Net the widths scale), autocast {q['amp']}, batch {q['base']['batch']}, seeds "
                f"{', '.join(map(str, seeds))}, at most {q['budget_min']:g} min per run.", "", _machine_line(q), "",
                scaling.quality_table(q), ""]
    if r["grading"]:
        out += ["Grading: `course_utils.autograde.grade_lesson` on N simulated hand-ins of lesson 02 (half the "
                "solution, half the untouched student notebook), one bubblewrap sandbox per submission, `jobs` "
                "sandboxes at a time (the command's default is one per CPU); the wall time includes building the "
                "nbgrader course and writing the gradebook once. The solution notebooks are flagged (\"needs "
                "attention\"), as they should be: their test cells hold the hidden tests, so the grader sees edited "
                "locked cells, runs the released ones and scores them in full.", "", grading, ""]
    return out


def _section_course(results: dict) -> list[str]:
    out, r = _start("Course run time (CPU)", results, "course_runtime_cpu", "course_runtime")
    if r is None:
        return out
    out += [_machine_line(r), "", course_runtime.table(r), ""]
    if r.get("grading_rows_from"):
        out += [f"The autograde columns are older: `{r['grading_rows_from']}`.", ""]
    if r.get("note"):
        out += [r["note"], ""]
    cfg16 = REPO / "course_utils" / "assets" / "cfg16.json"
    if cfg16.exists():
        m = json.loads(cfg16.read_text())
        out += [f"Lesson 07 runs here in its fast mode (30 training steps, then the shipped `cfg16` is graded); the "
                f"start page's figure is its full mode, the assessment training itself. That full run, as recorded "
                f"beside `cfg16.pt`: {m.get('steps')} steps in {m.get('wall_time_s')} s on {m.get('threads')} CPU "
                f"thread(s) ({m.get('machine')}, {str(m.get('date', ''))[:10]}).", ""]
    return out


def _section_text_to_image() -> list[str]:
    """Lesson 08's figures, from the records written beside clip16.pt and text16.pt right after training."""
    assets = REPO / "course_utils" / "assets"
    if not (assets / "clip16.json").exists():
        return []
    c = json.loads((assets / "clip16.json").read_text())
    e = c.get("evaluation", {})
    out = ["## Lesson 08: CLIP and text-to-image", "",
           f"`clip16` (`{c.get('command')}`, {c.get('wall_time_s')} s of training on {c.get('threads')} CPU threads, "
           f"{str(c.get('date', ''))[:10]}): zero-shot accuracy on the {e.get('test_images')} test images "
           f"{e.get('zero_shot_accuracy', 0):.1%} with \"a photo of a {{class}}\", {e.get('zero_shot_accuracy_ensemble', 0):.1%} "
           f"with the ensemble of {len(e.get('ensemble_templates', []))} templates (the supervised classifier: 90.8 %); "
           f"text → image recall@1 {e.get('recall@1', 0):.1%} and recall@5 {e.get('recall@5', 0):.1%} among "
           f"{e.get('retrieval_captions')} held-out captions (chance@1 {e.get('retrieval_chance@1', 0):.1%}; many "
           f"captions are word for word the same, which caps recall@1).", ""]
    if (assets / "text16.json").exists():
        t = json.loads((assets / "text16.json").read_text())
        ev = t.get("evaluation", {})
        def pct(r, key):
            return f"{r[key]:.1%}" if key in r else "–"
        rows = [[w, pct(r, "class_agreement"), pct(r, "class_agreement_typical_prompt"), pct(r, "brightness_pairs_obeyed"),
                 pct(r, "size_pairs_obeyed"), r["frechet_distance"]] for w, r in ev.get("per_w", {}).items()]
        out += [f"`text16` (`{t.get('command')}`, {t.get('wall_time_s')} s of training on {t.get('threads')} CPU "
                f"threads; evaluation {ev.get('sampler')}, {ev.get('samples_per_w')} samples per w, {ev.get('pairs_per_attribute')} same-noise pairs per attribute where shown): class agreement "
                f"of the shipped classifier with the class named in \"a photo of a {{class}}\"; dark/light and "
                f"small/large: the share of same-noise pairs whose measured attribute is ordered as the words say; "
                f"Fréchet distance to 1,000 test images in the classifier's feature space.", "",
                markdown_table(["w", "class agreement", "… with the typical prompt", "dark < light", "small < large",
                                "Fréchet distance"], rows), "",
                f"The typical prompt names the class's most common attribute bands ({'; '.join(ev.get('typical_prompts', []))}): "
                f"captions name each earned attribute with probability ½ "
                f"(`course_utils.captions.MENTION_PROBABILITY`), so an unnamed attribute means \"any\" and the bare "
                f"prompt need not name them (when every earned word was named, silence meant the middle band, and "
                f"\"a photo of a sneaker\", a sneaker that is not wide, reached 77.7% at w = 2). The EMA's share of the "
                f"first training step ({t.get('ema_start_removed')}) was removed after training "
                f"(`course_utils.train.remove_ema_start`).", ""]
    return out


def _section_sharper() -> list[str]:
    """Lesson 09's comparison of four ways to a 32 px sample, from course_utils/assets/sharper32.json."""
    rec_path = REPO / "course_utils" / "assets" / "sharper32.json"
    if not rec_path.exists():
        return []
    from course_utils.sharper import table_markdown

    r = json.loads(rec_path.read_text())
    return ["## Lesson 09: cascades and latent diffusion at 32 px", "",
            f"`{r.get('command')}` ({r.get('machine')}, {r.get('threads')} thread(s), torch {r.get('torch')}, "
            f"{str(r.get('date', ''))[:10]}): {r.get('samples')} class-conditional samples per method ({r.get('sampler')}, "
            f"guidance w = {r.get('w')}), Fréchet distance to the {r.get('real_test_images')} test images at 32 px in the "
            f"shipped classifier's feature space, its class agreement, and sampling seconds per 1,000 images. Then the "
            f"noise-conditioning augmentation sweep: the same base samples super-resolved at each level "
            f"({r.get('augmentation_sweep', {}).get('samples')} per level), at w = {r.get('w')} and at "
            f"w = {', '.join(r.get('augmentation_sweep_by_w', {})) or '–'} (each row's lowest distance in bold); then the "
            f"guidance sweep: (a) and (b) at each "
            f"guidance weight of the base stage, the same {r.get('guidance_sweep', {}).get('samples')} labels and seeds "
            f"(the w = {r.get('w')} column is the first table's). Training seconds of the shipped models, as "
            f"their records state: {r.get('training_seconds')}.", ""] + \
        ([f"Note: {r['note']}.", ""] if r.get("note") else []) + [table_markdown(r), ""]


def _section_checkpoints() -> list[str]:
    rows = []
    for meta_path in sorted((REPO / "course_utils" / "assets").glob("*.json")):
        pt = meta_path.with_suffix(".pt")
        if not pt.exists():
            continue
        m = json.loads(meta_path.read_text())
        seed = m.get("seed", (m.get("train_config") or {}).get("seed"))
        rows.append([pt.name, m.get("command"), seed, m.get("wall_time_s"), m.get("threads"),
                     f"{pt.stat().st_size / 1e6:.2f} MB", (m.get("sha256") or "")[:12]])
    return ["## Shipped checkpoints", "",
            "Loaded by lessons 04 and 06–09 to skip training; sha256-checked at load. Rebuild one with its command.", "",
            markdown_table(["file", "command", "seed", "training wall time (s)", "threads", "size", "sha256"], rows), ""]


def _section_goals(results: dict) -> list[str]:
    rows = []
    ttq = results.get("time_to_quality_cpu")
    if ttq:
        ours = next((c for c in ttq["contenders"] if c["name"] == "ours"), None)
        if ours and ours.get("speedup_vs_diffusers"):
            v = ours["speedup_vs_diffusers"]
            rows.append(["time to quality ≥ 2× diffusers (CPU)", f"{v}×", "met" if v >= 2 else "not met"])
        elif ours and ours.get("speedup_vs_diffusers_at_least"):
            v = ours["speedup_vs_diffusers_at_least"]
            rows.append(["time to quality ≥ 2× diffusers (CPU)",
                         f"≥ {v}× (diffusers did not reach the target within its budget)",
                         "met" if v >= 2 else "open (budget too short to tell)"])
        else:
            rows.append(["time to quality ≥ 2× diffusers (CPU)", "ours did not reach the target", "not met"])
        tuned = next((c for c in ttq["contenders"] if c["name"] == "diffusers-ourlr"), None)
        if ours and ours.get("time_to_quality_s") and tuned and tuned.get("time_to_quality_s"):
            for c in [c for c in ttq["contenders"] if c["name"].startswith("ours")]:
                if c.get("time_to_quality_s"):
                    v = round(tuned["time_to_quality_s"] / c["time_to_quality_s"], 2)
                    rows.append([f"(no goal) {c['name']} ({c['amp']}) vs the tutorial loop given our lr and warm-up",
                                 f"{v}×", "–"])
    else:
        rows.append(["time to quality ≥ 2× diffusers (CPU)", "not measured", "open"])
    tc = results.get("time_to_quality_contenders_cpu")
    for amp, label in (("off", "fp32"), ("bf16", "bf16")):
        goal = f"time to quality ≥ 2× diffusers given our recipe, {label} (CPU, same batch, matched parameters)"
        b = time_to_quality.best_vs_diffusers(tc).get(amp) if tc else None
        if tc and amp == "bf16" and not tc.get("cpu_native_bf16"):
            rows.append([goal, f"not measured: the benchmark's CPU ({tc['machine'].get('device_name', '?')}) has no native "
                         "bf16 (AVX512-BF16, AMX or Arm BF16), where bf16 autocast is emulated and slower", "open"])
        elif b is None:
            rows.append([goal, "not measured" if not tc else "no contender of these numerics reached the target", "open"])
        else:
            rows.append([goal, f"{b['speedup']}× ({b['name']}, medians; {b['worst_case']}× slowest run vs fastest "
                         f"{b['ref']} run)", "met" if b["speedup"] >= 2 else "not met"])
    gpu = results.get("train_throughput_cuda")
    for goal, key, need in (("GPU images/s ≥ 3× naive loop", "ours_vs_naive", 3.0),
                            ("GPU images/s ≥ 1.5× diffusers", "ours_vs_diffusers", 1.5)):
        v = gpu["ratios"].get(key) if gpu else None
        if v is not None:
            rows.append([goal, f"{v}×", "met" if v >= need else "not met"])
        elif gpu:                                         # a run cut short before that loop was measured
            rows.append([goal, "not measured (the GPU run stopped before this loop)", "open"])
        else:
            rows.append([goal, "not measured (no GPU)", "open"])
    sr = results.get("sampling_ratio_cpu")
    if sr:
        by = {row["contender"]: row["vs_diffusers_fp32"] for row in sr["rows"]}
        best = max(by, key=by.get)
        rows.append(["DDIM-20 sampling ≥ 1.5× diffusers' DDIMScheduler (CPU, images/s)",
                     f"ours fp32 {by['ours']}×; ours + bf16 {by['ours + bf16']}×; diffusers + bf16 "
                     f"{by['diffusers + bf16']}×; best row: {best}",
                     ("met only through bf16 autocast, which speeds diffusers up as much: same numerics, same speed"
                      if by.get("ours + bf16", 0) >= 1.5 and by.get("diffusers + bf16", 0) >= 0.9 * by["ours + bf16"]
                      else "met" if by["ours"] >= 1.5 else "not met")])
    else:
        rows.append(["DDIM-20 sampling ≥ 1.5× diffusers' DDIMScheduler (CPU, images/s)", "not measured", "open"])
    cpu = results.get("train_throughput_cpu")
    if cpu:
        rows.append(["CPU images/s vs diffusers (no goal set)", f"{cpu['ratios']['ours_vs_diffusers']}×", "–"])
    return ["## Goals", "", GOALS_NOTE, "", markdown_table(["goal", "measured", "status"], rows), ""]


def render(results: dict | None = None, path: Path | None = None) -> Path:
    results = read_results() if results is None else results
    lines = ["# Benchmarks", "",
             "Generated by `python -m bench --render-only` from the measurement files in `bench/results/` "
             "(`python -m bench` re-measures everything first; `./course.sh bench` also sets up the environment). "
             "Every table names its machine, date and command. No figure here is typed by hand.", ""]
    lines += _section_goals(results)
    lines += _section_throughput(results)
    lines += _section_ttq(results)
    lines += _section_contenders(results)
    lines += _section_sampling(results)
    lines += _section_sampling_ratio(results)
    lines += _section_loss_weighting(results)
    lines += _section_scaling(results)
    lines += _section_course(results)
    lines += gpu_check.report_lines(results)            # nothing unless bench/gpu_check.py has run on a GPU
    lines += _section_text_to_image()
    lines += _section_sharper()
    lines += _section_checkpoints()
    path = path or REPO / "BENCHMARKS.md"
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=None, help=f"comma-separated subset of {sorted(BENCHES)}")
    p.add_argument("--device", default="auto")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that every benchmark runs")
    p.add_argument("--render-only", action="store_true")
    a = p.parse_args(argv)
    quick_dir = tempfile.mkdtemp(prefix="bench-quick-") if a.quick else None
    if not a.render_only:
        names = a.only.split(",") if a.only else list(BENCHES)
        unknown = sorted(set(names) - set(BENCHES))
        if unknown:
            p.error(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHES)}")
        for name in names:
            print(f"== {name}", flush=True)
            fn, args, quick_args = BENCHES[name]
            args = [x.replace("{device}", a.device) for x in args]
            fn(args + (quick_args + ["--out", quick_dir] if a.quick else []))
    if a.quick:
        print(f"quick mode: results in {quick_dir}; bench/results/ and BENCHMARKS.md left as they are "
              "(quick figures are not measurements)")
        return 0
    print(f"wrote {render()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
