"""course_utils.checks, lesson 09 (cascades and latent diffusion): each check passes the right function, names
each classic mistake, writes only to stdout, returns None, and its three steps (make → run → judge) work apart,
with the outputs carried through torch.save / torch.load(weights_only=True) as a grader carries them.

The right answers here are written out independently of the package (plain torch: F.interpolate, the DDIM
update by hand), so a bug shared by the package and the check's reference would show as a ✗."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_utils import checks
from course_utils.checks import _harness

from check_support import blocked, fails, resolve, run, separates


def _ddim(eps_fn, diffusion, x, num_steps, clip, steps=None, keep=None):
    """DDIM (η = 0) written out: x̂0 = (x − √(1 − ᾱ)·ε)/√ᾱ, optionally clipped (ε recomputed), then
    x ← √ᾱ_prev·x̂0 + √(1 − ᾱ_prev)·ε."""
    ab = diffusion.alphas_cumprod
    ts = diffusion.ddim_timesteps(num_steps) if steps is None else steps
    B = x.shape[0]
    for k, (t, t_prev) in enumerate(zip(ts, ts[1:] + [-1])):
        eps = eps_fn(x, torch.full((B,), t, dtype=torch.long))
        a_t, a_prev = ab[t], (ab[t_prev] if t_prev >= 0 else torch.tensor(1.0))
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        if clip:
            x0 = x0.clamp(-1, 1)
            eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        if keep is not None:
            keep.append(x)
    return x


# ---------------------------------------------------------------------------------------------- augmentation
def _augment(mistake=None):
    def fn(z, level, noise):
        a = torch.as_tensor(level, dtype=z.dtype)
        a = a[:1] if mistake == "first_level" and a.ndim else a
        a = a if mistake == "no_reshape" else a.reshape(-1, 1, 1, 1)
        if mistake == "channels":
            a = a.reshape(1, -1, 1, 1)
        return {"add": lambda: z + a * noise,
                "variance": lambda: torch.sqrt(1 - a) * z + torch.sqrt(a) * noise,
                "blend": lambda: (1 - a) * z + a * noise,
                "swapped": lambda: a * z + torch.sqrt(1 - a ** 2) * noise,
                "no_sqrt": lambda: (1 - a ** 2) * z + a * noise,
                }.get(mistake, lambda: torch.sqrt(1 - a ** 2) * z + a * noise)()
    return fn


def test_augment_condition_right(capsys):
    run(checks.check_augment_condition, _augment())
    run(checks.check_augment_condition, _augment(), batch=3, size=8, float_level=0.0, seed=2)
    run(checks.check_augment_condition, lambda z, level, noise: torch.sqrt(1 - torch.as_tensor(level) ** 2).view(
        -1, 1, 1, 1) * z + torch.as_tensor(level).view(-1, 1, 1, 1) * noise)
    out = capsys.readouterr()
    assert out.err == "" and out.out.count("✓") == 3 and "✗" not in out.out


@pytest.mark.parametrize("mistake, kwargs, match", [
    ("add", {}, "not variance-preserving"),
    ("variance", {}, "treated as a variance"),
    ("blend", {}, "lesson 01's blend"),
    ("swapped", {}, "roles are swapped"),
    ("no_sqrt", {}, "square root is missing"),
    ("first_level", {}, "first image's level"),
    ("no_reshape", {}, "broadcast along the image width"),
    ("no_reshape", {"size": 8}, r"reshape it to \(B, 1, 1, 1\)"),
    ("channels", {}, "along the channels"),
])
def test_augment_condition_mistakes(capsys, mistake, kwargs, match):
    fails(capsys, checks.check_augment_condition, _augment(mistake), match=match, **kwargs)


def test_augment_condition_float_level_must_work(capsys):
    """A (B,)-only answer (level[:, None, None, None]) fails on a float level, with the conversion as the fix."""
    fails(capsys, checks.check_augment_condition,
          lambda z, level, noise: (1 - level[:, None, None, None] ** 2).sqrt() * z + level[:, None, None, None] * noise,
          match=r"level=0.3.*torch.as_tensor\(level")


def test_augment_condition_errors_and_shapes(capsys):
    fails(capsys, checks.check_augment_condition, lambda z, level, noise: 1 / 0, match="raised ZeroDivisionError")
    fails(capsys, checks.check_augment_condition, lambda z, level, noise: z[:, 0], match="should have shape")
    fails(capsys, checks.check_augment_condition, lambda z, level, noise: 0.5, match="should be a torch.Tensor")


def _not_implemented(*args):
    raise NotImplementedError()


def test_still_not_implemented_is_named(capsys):
    fails(capsys, checks.check_augment_condition, _not_implemented, match="still raises NotImplementedError")


# ---------------------------------------------------------------------------------------------- super-resolution
def _sr(mistake=None):
    def fn(model, diffusion, low, aug_level, cond_noise, x_T, num_steps):
        B, S = low.shape[0], 2 * low.shape[-1]
        mode = {"nearest": "nearest", "bilinear": "bilinear"}.get(mistake, "bicubic")
        z = F.interpolate(low, size=(S, S), mode=mode, **({} if mode == "nearest" else {"align_corners": False}))
        if mistake == "no_upsample":
            z = low
        elif mistake != "no_clamp":
            z = z.clamp(-1, 1)
        a = torch.full((B,), float(aug_level))

        def augment(noise):
            return (1 - a ** 2).sqrt().view(-1, 1, 1, 1) * z + a.view(-1, 1, 1, 1) * noise
        za = z if mistake == "no_augment" else augment(cond_noise)
        told = {"told_zero": torch.zeros(B), "told_squared": a ** 2, "told_float": float(aug_level)}.get(mistake, a)

        def eps(x, t):
            cond = augment(torch.randn(x.shape)) if mistake == "redrawn" else za
            return model(cond, t, x, told) if mistake == "swapped" else model(x, t, cond, told)
        T = diffusion.num_timesteps
        steps = list(range(T - 1, -1, -(T // num_steps))) if mistake == "timesteps" else None
        start = torch.randn(x_T.shape) if mistake == "fresh_noise" else x_T
        s = model.sr_config.residual_scale                 # None: the model denoises the image itself
        clip = (s is None) != (mistake in ("no_clip", "clip_residual"))
        with torch.no_grad():
            x = _ddim(eps, diffusion, start, num_steps, clip=clip, steps=steps)
        if mistake == "low_size":
            return low
        if s is not None:                                  # x is the scaled residual r: the image is z + s·r
            x = {"residual_only": x, "residual_times_s": s * x, "unscaled": z + x, "divided": z + x / s,
                 "plus_za": za + s * x}.get(mistake, z + s * x)
        return x.clamp(-1, 1)
    return fn


def test_super_resolve_right(capsys):
    run(checks.check_super_resolve, _sr())
    run(checks.check_super_resolve, _sr("told_float"))                      # a float level is fine
    run(checks.check_super_resolve, _sr(), batch=2, side=4, aug_level=0.0, num_steps=6, seed=3)
    run(checks.check_super_resolve, _sr(), residual_scale=None)             # a model that denoises the image
    run(checks.check_super_resolve, _sr(), residual_scale=0.2, seed=2)
    out = capsys.readouterr()
    assert out.err == "" and out.out.count("✓") == 5 and "✗" not in out.out


def test_super_resolve_for_one_kind_of_model_fails_for_the_other(capsys):
    """An answer that ignores sr_config.residual_scale is caught for the kind of model it did not expect."""
    def image_only(model, diffusion, low, aug_level, cond_noise, x_T, num_steps):
        from course_utils import cascade
        z_a = cascade.augment_condition(cascade.upsample(low, 2 * low.shape[-1]), aug_level, cond_noise)
        return diffusion.ddim_sample_loop(cascade.Conditioned(model, z_a, aug_level), x_T=x_T, num_steps=num_steps,
                                          clip_x0=True, progress=False).clamp(-1, 1)
    fails(capsys, checks.check_super_resolve, image_only, match="as if the model denoised the image")
    fails(capsys, checks.check_super_resolve, _sr("residual_only"), residual_scale=0.5, match="not the image")


def test_super_resolve_with_the_package_parts_passes(capsys):
    """upsample, augment_condition, Conditioned and ddim_sample_loop stay available while super_resolve is graded."""
    from course_utils import cascade

    def fn(model, diffusion, low, aug_level, cond_noise, x_T, num_steps):
        z = cascade.upsample(low, 2 * low.shape[-1])
        z_a = cascade.augment_condition(z, aug_level, cond_noise)
        r = diffusion.ddim_sample_loop(cascade.Conditioned(model, z_a, aug_level), x_T=x_T, num_steps=num_steps,
                                       clip_x0=False, progress=False)
        return (z + model.sr_config.residual_scale * r).clamp(-1, 1)
    check = checks.check_super_resolve
    with blocked(check):
        outputs = check.run(check.make(), fn)
    check.judge(check.make(), outputs)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, match", [
    ("no_upsample", "twice its side"),
    ("nearest", "nearest-neighbour"),
    ("bilinear", "bilinearly"),
    ("no_clamp", "not clamped"),
    ("no_augment", "not augmented"),
    ("told_zero", "told level 0"),
    ("told_squared", "a variance"),
    ("redrawn", "changed between denoising steps"),
    ("swapped", "into the x slot"),
    ("clip_residual", "not bounded by"),
    ("residual_only", "not the image"),
    ("residual_times_s", "without the upsampled image"),
    ("unscaled", "added unscaled"),
    ("divided", "divided by s"),
    ("plus_za", "augmented condition z_a"),
    ("timesteps", r"ddim_timesteps\(4\)"),
    ("fresh_noise", "given x_T"),
    ("low_size", "input's size"),
])
def test_super_resolve_mistakes(capsys, mistake, match):
    fails(capsys, checks.check_super_resolve, _sr(mistake), match=match)


def test_super_resolve_mistakes_of_an_image_model(capsys):
    fails(capsys, checks.check_super_resolve, _sr("no_clip"), residual_scale=None, match="not clipped")
    with pytest.raises(ValueError, match="residual_scale should be None or a positive float"):
        checks.check_super_resolve(_sr(), residual_scale=0)


def test_super_resolve_errors(capsys):
    fails(capsys, checks.check_super_resolve, lambda *a: 1 / 0, match="raised ZeroDivisionError")
    fails(capsys, checks.check_super_resolve, lambda m, d, low, *a: torch.zeros(3, 1, 16, 15),
          match="should have shape")
    fails(capsys, checks.check_super_resolve, lambda m, d, low, a, c, x_T, n: x_T, match="never called")
    fails(capsys, checks.check_super_resolve, lambda m, d, low, a, c, x_T, n: m(x_T, torch.zeros(3).long()),
          match=r"model\(x_t, t, cond, aug_level\)")


# ---------------------------------------------------------------------------------------------- scale factor
def _scale(mistake=None):
    def fn(latents):
        z = latents
        per_channel = z.transpose(0, 1).reshape(z.shape[1], -1).std(dim=1)
        return {"std": lambda: z.std(), "var": lambda: 1 / z.var(), "per_channel": lambda: 1 / per_channel,
                "max": lambda: 1 / z.abs().max(), "mean_abs": lambda: 1 / z.abs().mean(),
                "means": lambda: 1 / z.mean(dim=(0, 2, 3)).std(), "rms": lambda: 1 / z.pow(2).mean().sqrt(),
                "mean_of_factors": lambda: (1 / per_channel).mean(), "sd": lambda: 0.18215,
                "along_batch": lambda: 1 / z.std(dim=0), "string": lambda: "0.5",
                "numpy": lambda: float(1 / z.numpy().std()),
                }.get(mistake, lambda: (1 / z.std()).item())()
    return fn


def test_scale_factor_right(capsys):
    run(checks.check_scale_factor, _scale())
    run(checks.check_scale_factor, lambda z: 1 / z.std())                 # a 0-d tensor is fine
    run(checks.check_scale_factor, _scale("numpy"), batch=32, channels=8, seed=1)   # numpy's std (ddof 0) too
    out = capsys.readouterr()
    assert out.err == "" and out.out.count("✓") == 3 and "✗" not in out.out


@pytest.mark.parametrize("mistake, match", [
    ("std", "standard deviation itself"),
    ("var", "1 / variance"),
    ("per_channel", "one per channel"),
    ("max", r"1 / max\|z\|"),
    ("mean_abs", r"1 / mean\|z\|"),
    ("means", "channel means"),
    ("rms", "root mean square"),
    ("mean_of_factors", "averaged the per-channel factors"),
    ("sd", "Stable Diffusion"),
    ("along_batch", "one number"),
    ("string", "should return a float"),
])
def test_scale_factor_mistakes(capsys, mistake, match):
    fails(capsys, checks.check_scale_factor, _scale(mistake), match=match)


def test_scale_factor_errors(capsys):
    fails(capsys, checks.check_scale_factor, lambda z: z.nonexistent(), match="raised AttributeError")


# ---------------------------------------------------------------------------------------------- latent sampling
def _latent(mistake=None):
    def fn(model, diffusion, ae, scale, labels, w, x_T, num_steps):
        B = labels.shape[0]
        null = torch.full_like(labels, model.null_class)
        ww = 0.0 if mistake == "w0" else w

        def eps(x, t):
            if mistake == "no_labels":
                return model(x, t)
            if mistake == "w0":
                return model(x, t, labels)
            if mistake == "unbatched":
                c, u = model(x, t, labels), model(x, t, None)
            elif mistake == "null_first":
                u, c = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([null, labels])).chunk(2)
            else:
                c, u = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null])).chunk(2)
            return (1 + ww) * c - ww * u
        states: list = []
        with torch.no_grad():
            z = _ddim(eps, diffusion, x_T, num_steps, clip=mistake == "clip", keep=states)
        if mistake == "intermediate":
            z = states[-2]                              # one step before the end
        if mistake == "latents":
            return z
        if mistake == "x_T":
            z = x_T
        unscaled = {"times": z * scale, "no_unscale": z}.get(mistake, z / scale)
        return ae.decode(unscaled)
    return fn


def test_latent_sample_right(capsys):
    run(checks.check_latent_sample, _latent())
    run(checks.check_latent_sample, _latent("unbatched"))                 # ε(x, ∅) as model(x, t, None)
    run(checks.check_latent_sample, _latent("null_first"))
    run(checks.check_latent_sample, _latent(), batch=2, channels=3, side=2, w=0.0, scale=0.5, num_steps=7, seed=4)
    out = capsys.readouterr()
    assert out.err == "" and out.out.count("✓") == 4 and "✗" not in out.out


@pytest.mark.parametrize("mistake, match", [
    ("times", "multiplied by the scale factor"),
    ("no_unscale", "without undoing the scale factor"),
    ("clip", "clipped to \\[-1, 1\\] in latent space"),
    ("w0", "no guidance"),
    ("no_labels", "labels never reached the model"),
    ("x_T", "you decoded x_T"),
    ("intermediate", "intermediate latent"),
    ("latents", "not images"),
])
def test_latent_sample_mistakes(capsys, mistake, match):
    fails(capsys, checks.check_latent_sample, _latent(mistake), match=match)


def test_latent_sample_errors(capsys):
    fails(capsys, checks.check_latent_sample, lambda *a: 1 / 0, match="raised ZeroDivisionError")
    fails(capsys, checks.check_latent_sample, lambda m, d, ae, s, y, w, x_T, n: torch.zeros(4, 1, 8, 9),
          match="should have shape")
    fails(capsys, checks.check_latent_sample, lambda m, d, ae, s, y, w, x_T, n: ae.decode(x_T[:, :2]),
          match=r"ae.decode takes \(B, 4, h, w\)")


# ---------------------------------------------------------------------------------------------- the three steps
_SEPARATE = [
    ("check_augment_condition", {"seed": 3}, _augment(), _augment("blend"), "lesson 01's blend"),
    ("check_super_resolve", {"seed": 1}, _sr(), _sr("redrawn"), "changed between denoising steps"),
    ("check_scale_factor", {"seed": 2}, _scale(), _scale("std"), "standard deviation itself"),
    ("check_latent_sample", {"seed": 5}, _latent(), _latent("times"), "multiplied by the scale factor"),
]


@pytest.mark.parametrize("check, params, right, wrong, match", _SEPARATE)
def test_lesson09_steps_separate_through_torch_save(capsys, check, params, right, wrong, match):
    c = getattr(checks, check)
    assert isinstance(c, _harness.Check) and _harness.get_check(check) is c
    separates(capsys, c, params, right, wrong, match, ticks=1)


@pytest.mark.parametrize("check", [case[0] for case in _SEPARATE])
def test_lesson09_references_pass(capsys, check):
    c = getattr(checks, check)
    assert c.reference is not None
    run(c, c.reference)
    out = capsys.readouterr()
    assert out.err == "" and "✓" in out.out and "✗" not in out.out


def test_every_lesson09_check_is_separated_and_blocks_real_functions():
    names = {n for n in checks.lesson09.__all__ if n.startswith("check_")}
    assert names == {case[0] for case in _SEPARATE}
    for name in names:
        assert checks.get_check(name).blocks
        for dotted in checks.get_check(name).blocks:
            assert callable(resolve(dotted)), dotted


@pytest.mark.parametrize("check, answer", [
    ("check_augment_condition", lambda: __import__("course_utils.cascade").cascade.augment_condition),
    ("check_super_resolve", lambda: lambda m, d, low, a, c, x_T, n: __import__("course_utils.cascade").cascade.
     super_resolve(m, d, low, a, n, cond_noise=c, x_T=x_T)),
    ("check_scale_factor", lambda: __import__("course_utils.latent").latent.scale_factor),
    ("check_latent_sample", lambda: lambda m, d, ae, s, y, w, x_T, n: __import__("course_utils.latent").latent.
     decode_latents(ae, __import__("course_utils.latent").latent.sample_latents(m, d, y, w, n, x_T=x_T,
                                                                                latent_shape=tuple(x_T.shape[1:])), s)),
    ("check_latent_sample", lambda: lambda m, d, ae, s, y, w, x_T, n: ae.decode(__import__("course_utils.latent").latent.
     sample_latents(m, d, y, w, n, x_T=x_T, latent_shape=tuple(x_T.shape[1:])) / s)),
])
def test_delegating_to_the_package_fails_under_the_graders_block(capsys, check, answer):
    """Also through super_resolve and sample_latents (plain functions, no decorator, so the grader's block can swap
    their code); the package works again once the block is lifted."""
    c = getattr(checks, check)
    with blocked(c):
        outputs = c.run(c.make(), answer())
    with pytest.raises(_harness.CheckFailed, match="not available while your"):
        c.judge(c.make(), outputs)
    run(c, answer())                                        # outside the block the package works again
    out = capsys.readouterr()
    assert out.err == "" and "✓" in out.out
