"""Lesson 04 end to end: the standard lesson tests of ``lesson_harness`` (nbval on the solution; nbgrader
autograde of the solution, the untouched student notebook, one exercise right and a metadata-stripped
copy), and direct runs of each test cell on every
classic mistake: t from 1…T-1 or 0…T-2, one t for the whole batch, the loss against x0, no zero_grad, the
loss returned as a tensor, β[t-1] and ᾱ[t-1], noise at t = 0, σ_t = β_t, a loop that stops at t = 1 or
starts at t = T."""
from __future__ import annotations

from course_utils import lessons
from lesson_harness import CellTests, LessonSpec, LessonTests, solution_code

# answer grade_id → (its test cell, points), read from the solution notebook by the registry
EXERCISES = lessons.get("04").exercises()

# A wrong answer: (answer grade_id, text in the solution, its replacement, caught by the visible tests too?)
MISTAKES = {
    "t_from_one": ("ex1-loss-simple", "torch.randint(0, T, (B,)", "torch.randint(1, T, (B,)", True),
    "t_to_T_minus_2": ("ex1-loss-simple", "torch.randint(0, T, (B,)", "torch.randint(0, T - 1, (B,)", True),
    "one_t_per_batch": ("ex1-loss-simple", "torch.randint(0, T, (B,), generator=generator, device=x0.device)",
                        "torch.randint(0, T, (1,), generator=generator, device=x0.device).expand(B)", True),
    "loss_against_x0": ("ex1-loss-simple", "F.mse_loss(eps_pred, eps)", "F.mse_loss(eps_pred, x0)", True),
    "no_zero_grad": ("ex2-train-step", "optimizer.zero_grad()", "pass", True),
    "loss_as_tensor": ("ex2-train-step", "return loss.item()", "return loss", True),
    "beta_t_minus_1": ("ex3-p-sample-step", "beta_t = diffusion.betas[t]", "beta_t = diffusion.betas[t - 1]", True),
    "alpha_bar_t_minus_1": ("ex3-p-sample-step", "alpha_bar_t = diffusion.alphas_cumprod[t]",
                            "alpha_bar_t = diffusion.alphas_cumprod[t - 1]", True),
    "noise_at_last_step": ("ex3-p-sample-step", "if t == 0:", "if False:", True),
    "sigma_is_beta": ("ex3-p-sample-step", "torch.sqrt(beta_t) * noise", "beta_t * noise", True),
    "loop_stops_at_1": ("ex4-sample-loop", "range(diffusion.num_timesteps - 1, -1, -1)",
                        "range(diffusion.num_timesteps - 1, 0, -1)", True),
    "loop_starts_at_T": ("ex4-sample-loop", "range(diffusion.num_timesteps - 1, -1, -1)",
                         "range(diffusion.num_timesteps, -1, -1)", True),
}


class TestLesson04(LessonTests, CellTests):
    spec = LessonSpec.from_registry(
        "04",
        one_right="ex3-p-sample-step",
        # imports (device line), the training run (tqdm bar, live plot, timings), the short run's samples
        # (timing), the trajectory widget (random view ids), the animation (random element ids) and the
        # sampler comparison (timings; its figures change when the shipped checkpoint is replaced).
        max_ignored_outputs=6,
        visible_marker="check_loss_simple",
        # env: the registry's test_env for lesson 04 (one torch thread: the sampling cells stay well inside
        # nbgrader's 300 s cell timeout when other processes hold the cores)
    )
    # direct runs of the test cells
    mistakes = MISTAKES
    context = "before"

    def test_t_probe_sees_both_ends_and_a_uniform_histogram(self, cells, capsys):
        """The hidden test's instrumented model records every t: 0 and T-1 appear, the histogram is flat."""
        from course_utils import checks

        ns: dict = {}
        exec(cells["imports"].source, ns)            # noqa: S102
        exec(solution_code(cells["ex1-loss-simple"]), ns)   # noqa: S102
        from course_utils.diffusion import GaussianDiffusion
        from course_utils.schedules import linear_betas

        import torch

        rec = checks._harness.Recorder(1000)
        d = GaussianDiffusion(linear_betas(1000))
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for _ in range(40):
                ns["loss_simple"](rec, d, torch.zeros(512, 1, 1, 1), None, g)
        ts = torch.cat(rec.seen_t)
        assert int(ts.min()) == 0 and int(ts.max()) == 999
        counts = torch.bincount(ts, minlength=1000).double()
        assert float(((counts - counts.mean()) ** 2 / counts.mean()).sum()) < 999 + 6 * (2 * 999) ** 0.5
        capsys.readouterr()
