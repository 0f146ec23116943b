"""Seeding, devices and image grids."""
import random

import numpy as np
import pytest
import torch

from course_utils.utils import get_device, make_grid, set_seed, show_images, to_display


def test_set_seed_seeds_everything():
    g = set_seed(123)
    a = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g).item())
    g = set_seed(123)
    b = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g).item())
    assert a == b
    with pytest.raises(ValueError, match="seed"):
        set_seed(-1)


def test_get_device():
    assert get_device("cpu") == torch.device("cpu")
    auto = get_device("auto")
    assert auto.type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        assert auto.type in ("cpu", "mps")
        with pytest.raises(ValueError, match="no CUDA GPU"):
            get_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        get_device("tpu0")


def test_grid_and_display():
    x = torch.linspace(-1, 1, 5 * 1 * 4 * 4).view(5, 1, 4, 4)
    d = to_display(x)
    assert float(d.min()) == 0.0 and float(d.max()) == 1.0
    grid = make_grid(x, nrow=3, padding=1)
    assert grid.shape == (2 * 5 + 1, 3 * 5 + 1, 3)         # torchvision repeats 1 channel to 3
    import matplotlib
    matplotlib.use("Agg")
    ax = show_images(x, nrow=3, title="t")
    assert ax.get_title() == "t"
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        make_grid(x[0])
    with pytest.raises(ValueError, match="nrow"):
        make_grid(x, nrow=0)


@pytest.mark.parametrize("b,c,nrow,padding", [(5, 1, 3, 1), (16, 1, 16, 1), (16, 1, 4, 2), (7, 3, 8, 0), (1, 1, 8, 1),
                                              (10, 3, 4, 3), (3, 1, 1, 1)])
def test_make_grid_is_torchvisions_layout(b, c, nrow, padding):
    """The einops grid against torchvision's own make_grid (pad value 1), pixel for pixel."""
    from torchvision.utils import make_grid as tv_make_grid

    x = torch.rand(b, c, 5, 4, generator=torch.Generator().manual_seed(b)) * 2 - 1
    ref = tv_make_grid(to_display(x), nrow=nrow, padding=padding, pad_value=1.0).permute(1, 2, 0)
    assert torch.equal(make_grid(x, nrow=nrow, padding=padding), ref)


def test_run_mode_follows_the_device_and_the_graders_flag(monkeypatch):
    """"grading" whenever COURSE_GRADING=1 (the grader's runs), else "cpu" / "gpu" from the device."""
    from course_utils.utils import run_mode

    monkeypatch.delenv("COURSE_GRADING", raising=False)
    assert run_mode("cpu") == "cpu"
    monkeypatch.setenv("COURSE_GRADING", "0")
    assert run_mode("cpu") == "cpu"
    monkeypatch.setenv("COURSE_GRADING", "1")
    assert run_mode("cpu") == "grading"
    monkeypatch.setenv("COURSE_GRADING", "yes")
    with pytest.raises(ValueError, match="COURSE_GRADING must be '1'"):
        run_mode("cpu")


def test_native_bf16_is_read_from_the_cpu_flags_not_from_onednn():
    """oneDNN says bf16 is supported on any AVX512 CPU, where it is emulated and slower than fp32; only the
    instructions that compute in bf16 count (AVX512-BF16 or AMX on x86, BF16 on Arm)."""
    from course_utils.utils import cpu_has_native_bf16

    xeon = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R)\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\n"
    assert not cpu_has_native_bf16(xeon)
    assert cpu_has_native_bf16(xeon.replace("avx512_vnni", "avx512_vnni avx512_bf16"))     # Zen 4, Cooper Lake
    assert cpu_has_native_bf16(xeon.replace("avx512_vnni", "amx_tile amx_bf16"))           # Sapphire Rapids
    assert cpu_has_native_bf16("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n")      # Arm v8.6+
    assert not cpu_has_native_bf16("processor\t: 0\nFeatures\t: fp asimd\n")
    assert not cpu_has_native_bf16("")                                                      # no flags line
    assert isinstance(cpu_has_native_bf16(), bool)                                          # this machine
