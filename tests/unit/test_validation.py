"""course_utils.validation: the one place for argument checks, and the modules that use it."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch

from course_utils.diffusion import GaussianDiffusion
from course_utils.models import UNet
from course_utils.schedules import linear_betas
from course_utils.validation import (as_batch_vector, check_clip_x0, check_float_tensor, check_image_batch,
                                     check_labels, check_timesteps, is_int, is_number)

PACKAGE = Path(__file__).resolve().parents[2] / "course_utils"


def test_a_bool_is_neither_an_int_nor_a_number():
    assert is_int(3) and is_int(-1) and is_int(0)
    assert not any(is_int(v) for v in (True, False, 3.0, "3", None, torch.tensor(3)))
    assert is_number(3) and is_number(-2.5) and is_number(0)
    assert not any(is_number(v) for v in (True, False, float("nan"), float("inf"), -float("inf"), "1", None))


def test_as_batch_vector_broadcasts_ints_and_0d_tensors_and_keeps_b():
    kw = dict(name="t", per="timestep", type_error="t bad: {got}.")
    for v in (7, torch.tensor(7), torch.tensor([7, 7, 7]), torch.tensor([7, 7, 7], dtype=torch.int32)):
        out = as_batch_vector(v, 3, "cpu", **kw)
        assert out.dtype == torch.int64 and out.tolist() == [7, 7, 7], v
    out = as_batch_vector(2.5, 2, "cpu", allow_float=True, **kw)
    assert out.dtype == torch.float32 and out.tolist() == [2.5, 2.5]
    assert as_batch_vector(torch.tensor([0.5, 1.0]), 2, "cpu", allow_float=True, **kw).dtype == torch.float32
    with pytest.raises(ValueError, match=re.escape("t must have shape (B,) = (3,), one timestep per image; got (2,).")):
        as_batch_vector(torch.tensor([1, 2]), 3, "cpu", **kw)
    with pytest.raises(ValueError, match=re.escape("t bad: bool.")):
        as_batch_vector(True, 3, "cpu", **kw)
    with pytest.raises(ValueError, match=re.escape("t bad: torch.float32.")):
        as_batch_vector(torch.zeros(3), 3, "cpu", **kw)
    with pytest.raises(ValueError, match=re.escape("t bad: str.")):
        as_batch_vector("1", 3, "cpu", **kw)


@pytest.mark.parametrize("t, message", [
    (True, "t must be an int or an int64 tensor of shape (B,); got a bool."),
    (1.5, "t must be an int or an int64 tensor of shape (B,); got float."),
    (torch.zeros(2), "t must hold integer timesteps (int64); got dtype torch.float32. "
                     "Use torch.randint(0, T, (B,)) or t.long()."),
    (torch.zeros(3, dtype=torch.long), "t must have shape (B,) = (2,), one timestep per image; got (3,)."),
    (10, "t must lie in [0, 9] (0-indexed: paper step 1 is index 0, paper step T=10 is index 9); got 10."),
    (-1, "t must lie in [0, 9] (0-indexed: paper step 1 is index 0, paper step T=10 is index 9); got -1."),
])
def test_check_timesteps_messages_word_for_word(t, message):
    with pytest.raises(ValueError) as err:
        check_timesteps(t, 2, 10, "cpu")
    assert str(err.value) == message
    with pytest.raises(ValueError) as err2:          # GaussianDiffusion says the same, through the same helper
        GaussianDiffusion(linear_betas(10)).q_sample(torch.zeros(2, 1, 4, 4), t)
    assert str(err2.value) == message


def test_check_timesteps_accepts_minus_one_only_when_asked():
    assert check_timesteps(-1, 2, 10, "cpu", name="t_prev", allow_minus_one=True).tolist() == [-1, -1]
    with pytest.raises(ValueError, match=re.escape("t_prev must lie in [-1, 9]")):
        check_timesteps(-2, 2, 10, "cpu", name="t_prev", allow_minus_one=True)


@pytest.mark.parametrize("y, message", [
    (True, "y must be an int class label or an int64 tensor of shape (B,); got a bool."),
    (1.0, "y must be an int class label or an integer tensor of shape (B,); got float."),
    (torch.zeros(2), "y must be an int class label or an integer tensor of shape (B,); got torch.float32."),
    (torch.zeros(2, dtype=torch.bool), "y must be an int class label or an integer tensor of shape (B,); got torch.bool."),
    (torch.zeros(3, dtype=torch.long), "y must have shape (B,) = (2,), one label per image; got (3,)."),
])
def test_check_labels_messages_word_for_word(y, message):
    with pytest.raises(ValueError) as err:
        check_labels(y, 2, "cpu")
    assert str(err.value) == message


def test_check_labels_values():
    assert check_labels(None, 3, "cpu") is None
    assert check_labels(4, 3, "cpu").tolist() == [4, 4, 4]
    assert check_labels(torch.tensor(2, dtype=torch.int32), 2, "cpu").dtype == torch.int64


@pytest.mark.parametrize("t, message", [
    (True, "t must be an int or a (B,) int64 tensor of timesteps; got bool."),
    ("0", "t must be an int or a (B,) int64 tensor of timesteps; got str."),
    (torch.zeros(2, dtype=torch.bool), "t must be an int or a (B,) int64 tensor of timesteps; got torch.bool."),
    (torch.zeros(3), "t must have shape (B,) = (2,), one timestep per image; got (3,)."),
])
def test_unet_timesteps_go_through_the_same_coercion(t, message):
    model = UNet(channels=(8, 16))
    with pytest.raises(ValueError) as err:
        model(torch.zeros(2, 1, 8, 8), t)
    assert str(err.value) == message


def test_unet_accepts_int_float_0d_and_b_timesteps_alike():
    torch.manual_seed(0)
    model = UNet(channels=(8, 16)).eval()
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        ref = model(x, torch.tensor([5, 5]))
        for t in (5, 5.0, torch.tensor(5), torch.tensor([5, 5], dtype=torch.int32)):
            torch.testing.assert_close(model(x, t), ref)


def test_float_and_image_batch_checks():
    x = torch.zeros(2, 1, 4, 4)
    assert check_float_tensor(x, "x0") is x and check_image_batch(x) is x
    with pytest.raises(ValueError, match=re.escape("x0 must be a torch.Tensor; got list.")):
        check_float_tensor([1.0], "x0")
    with pytest.raises(ValueError, match=re.escape("x0 must be a floating-point tensor (e.g. float32); got dtype "
                                                   "torch.uint8. Convert images with x.float()")):
        check_float_tensor(torch.zeros(2, dtype=torch.uint8), "x0")
    with pytest.raises(ValueError, match="x0 must have a batch dimension"):
        check_float_tensor(torch.tensor(1.0), "x0")
    with pytest.raises(ValueError, match=re.escape("images must be a float tensor of shape (N, 1, H, W) in [-1, 1]; "
                                                   "got torch.Size([4, 4]).")):
        check_image_batch(torch.zeros(4, 4))
    with pytest.raises(ValueError, match=re.escape("images must be a float tensor of shape (N, 1, H, W) in [-1, 1]; "
                                                   "got str.")):
        check_image_batch("img")


def test_check_clip_x0():
    for ok in (None, True, False):
        check_clip_x0(ok)
    for bad in (0, 1, "no"):
        with pytest.raises(ValueError, match="clip_x0 must be None"):
            check_clip_x0(bad)


# The modules converted to validation.py: no hand-written copy of the checks may come back.
CONVERTED = ["diffusion.py", "models.py", "schedules.py", "data.py", *(f"widgets/{p.name}" for p in
                                                                        sorted((PACKAGE / "widgets").glob("*.py")))]


def _bool_is_not_int_copies(path: Path) -> list[int]:
    """Lines with `isinstance(v, bool) or not isinstance(v, int|(int, float))` or `… and not isinstance(v, bool)`."""
    hits = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.BoolOp):
            calls = [v.operand if isinstance(v, ast.UnaryOp) else v for v in node.values]
            types = {ast.unparse(c.args[1]) for c in calls if isinstance(c, ast.Call)
                     and getattr(c.func, "id", None) == "isinstance" and len(c.args) == 2}
            if "bool" in types and types & {"int", "(int, float)"}:
                hits.append(node.lineno)
    return hits


def test_the_bool_is_not_an_int_test_lives_only_in_validation():
    found = {name: _bool_is_not_int_copies(PACKAGE / name) for name in CONVERTED}
    assert not any(found.values()), {k: v for k, v in found.items() if v}


def test_the_detector_finds_a_copy(tmp_path):
    """Guards the test above: the three spellings the package used are all found."""
    p = tmp_path / "m.py"
    p.write_text("def f(v):\n    if isinstance(v, bool) or not isinstance(v, int):\n        pass\n"
                 "    ok = isinstance(v, int) and not isinstance(v, bool)\n"
                 "    if isinstance(w, bool) or not isinstance(w, (int, float)):\n        pass\n")
    assert _bool_is_not_int_copies(p) == [2, 4, 5]


def test_timestep_coercion_is_written_once():
    """No module of CONVERTED builds a (B,) tensor from a scalar t / y by hand (``torch.full((B,), t…``)."""
    pattern = re.compile(r"torch\.full\(\((?:B|batch),\), (?:t|y)\b")
    found = {name: [i for i, line in enumerate((PACKAGE / name).read_text(encoding="utf-8").splitlines(), 1)
                    if pattern.search(line)] for name in CONVERTED}
    assert not any(found.values()), {k: v for k, v in found.items() if v}
