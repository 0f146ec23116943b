"""Train the FashionMNIST classifier behind ``course_utils.metrics`` (class agreement, Fréchet distance).

Runs on a CPU in a few minutes and is seeded: the same command on the same machine (and thread
count) gives bit-identical weights; the file's sha256 still changes, since the record stored with
them holds the date and wall time. The whole training split stays resident as one tensor (no
DataLoader). Each training image is shown at a random resolution (16, 28 or 32 px, made the way
``load_fashion_mnist(image_size=...)`` makes them, mixed within every batch), so the classifier, which
resizes everything to 28 px internally, stays accurate on 16 and 32 px samples.
Light augmentation: random horizontal flips and shifts of up to 2 px.

Writes ``--out`` (default ``course_utils/assets/fashion_classifier.pt``; float32 state_dict, loadable with
``torch.load(weights_only=True)``), its ``.sha256`` sidecar and a ``.json`` training record (command, seed,
epochs, wall time, torch version, date, test accuracy at 16/28/32 px).

    python scripts/train_classifier.py            # the shipped weights
    python scripts/train_classifier.py --epochs 1 --out /tmp/clf.pt
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import platform
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:              # run as `python scripts/train_classifier.py` from anywhere
    sys.path.insert(0, str(ROOT))

from course_utils.data import load_fashion_mnist  # noqa: E402
from course_utils.metrics import DEFAULT_CLASSIFIER_PATH, FashionClassifier, load_classifier, write_sha256  # noqa: E402
from course_utils.utils import set_seed  # noqa: E402

SIZES = (16, 28, 32)
SIZE_PROBS = (0.4, 0.4, 0.2)     # 16 px is the hard case; 32 px is almost 28 px after the internal resize
SIZES_T = torch.tensor(SIZES)


def resize_like_loader(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 1, 28, 28) -> (B, 1, size, size) as ``load_fashion_mnist(image_size=size)`` does it."""
    if size == 28:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp_(-1, 1)


def augment(x: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Random horizontal flip and integer shift (background fill -1) per image: (B, 1, 28, 28) -> same."""
    b, _, h, w = x.shape
    flip = torch.rand(b, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)[:, 0]                 # (B, H+2s, W+2s)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]                     # (B, H, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, :]                     # (B, 1, W)
    return padded[torch.arange(b)[:, None, None], rows, cols].unsqueeze(1)


def mix_resolutions(x: torch.Tensor, probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Show each image at a random resolution of ``SIZES``, as the classifier sees it: (B, 1, 28, 28) -> same.

    Every image is taken to its size the way the loader does it, then back to 28 px the way
    :meth:`FashionClassifier.resize` does it. Mixing *within* each batch matters: BatchNorm's running
    statistics then describe the mixture that every training batch had; with one resolution per batch
    they average batches of different statistics and the 16 px accuracy drops by a few points.
    """
    choice = SIZES_T[torch.multinomial(probs, x.shape[0], replacement=True, generator=generator)]
    out = x.clone()
    for size in SIZES:
        sel = choice == size
        if size != 28 and sel.any():
            out[sel] = FashionClassifier.resize(resize_like_loader(x[sel], size))
    return out


@torch.inference_mode()
def accuracy(model: FashionClassifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    model.eval()
    hits = sum((model(xb).argmax(1) == yb).sum().item()
               for xb, yb in zip(images.split(batch_size), labels.split(batch_size)))
    return hits / len(labels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5, help="passes over the 60 000 training images (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seeds python, numpy and torch (default 0)")
    parser.add_argument("--out", default=str(DEFAULT_CLASSIFIER_PATH.relative_to(ROOT)),
                        help="weights file (.pt); the .sha256 sidecar and .json record go beside it "
                             "(default course_utils/assets/fashion_classifier.pt)")
    parser.add_argument("--batch-size", type=int, default=128, help="default 128")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the one-cycle schedule (default 3e-3)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--size-probs", default=",".join(map(str, SIZE_PROBS)),
                        help="how often a training image is shown at 16, 28 and 32 px (default %(default)s); "
                             "'0,0.5,0.5' makes lesson 09's sharpness-aware classifier, which never sees a blurred "
                             "16 px image and so tells a blurry 32 px image from a sharp one")
    parser.add_argument("--root", default=None, help="FashionMNIST root (default: $COURSE_DATA_DIR, ./data, Debian)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be ≥ 1")
    try:
        probs = tuple(float(v) for v in args.size_probs.split(","))
    except ValueError:
        probs = ()
    if len(probs) != len(SIZES) or min(probs) < 0 or sum(probs) <= 0:
        parser.error(f"--size-probs must be {len(SIZES)} non-negative numbers for {SIZES} px, e.g. 0.4,0.4,0.2")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    if not out.is_absolute():
        out = (Path.cwd() / out).resolve()

    from tqdm.auto import tqdm

    gen = set_seed(args.seed)
    train = load_fashion_mnist(train=True, image_size=28, root=args.root)
    tests = {s: load_fashion_mnist(train=False, image_size=s, root=args.root) for s in SIZES}

    model = FashionClassifier()
    n_params = sum(p.numel() for p in model.parameters())
    steps_per_epoch = len(train) // args.batch_size
    total = steps_per_epoch * args.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total, pct_start=0.2)
    size_probs = torch.tensor(probs)

    t0 = time.time()
    history = []
    bar = tqdm(total=total, desc="classifier", unit="step")
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(train), generator=gen)
        for i in range(steps_per_epoch):
            idx = perm[i * args.batch_size:(i + 1) * args.batch_size]
            x, y = augment(train.images[idx], gen), train.labels[idx]
            logits = model(mix_resolutions(x, size_probs, gen))
            loss = F.cross_entropy(logits, y, label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            if i % 50 == 0:
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
        accs = {s: accuracy(model, tests[s].images, tests[s].labels) for s in SIZES}
        history.append({"epoch": epoch + 1, **{f"test_acc_{s}px": round(a, 4) for s, a in accs.items()}})
        bar.write(f"epoch {epoch + 1}: test accuracy " + ", ".join(f"{s}px {a:.4f}" for s, a in accs.items()))
    bar.close()
    wall = time.time() - t0

    model.eval()
    state = {k: v.detach().to(torch.float32) if v.is_floating_point() else v.detach() for k, v in model.state_dict().items()}
    cmd = shlex.join(["python", "scripts/train_classifier.py", *(sys.argv[1:] if argv is None else argv)])
    record = {
        "command": cmd,
        "seed": args.seed,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "train_sizes": list(SIZES),
        "train_size_probs": list(probs),
        "wall_time_s": round(wall, 1),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "threads": torch.get_num_threads(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": model.config(),
        "num_parameters": n_params,
        "test_accuracy": {f"{s}px": round(accs[s], 4) for s in SIZES},
        "history": history,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    torch.save({"format": 1, "config": model.config(), "state_dict": state,
                "meta": json.loads(json.dumps(record))}, tmp)
    tmp.replace(out)
    write_sha256(out)
    record["sha256"] = out.with_name(out.name + ".sha256").read_text().split()[0]
    record["file_bytes"] = out.stat().st_size
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")

    # The shipped file must load the way users load it: hash check, then weights_only=True.
    reloaded = load_classifier(out)
    check = accuracy(reloaded, tests[28].images, tests[28].labels)
    if not math.isclose(check, accs[28], abs_tol=1e-9):
        raise RuntimeError(f"reloaded weights give {check:.4f} at 28 px instead of {accs[28]:.4f}.")
    print(f"wrote {out} ({record['file_bytes'] / 1e6:.2f} MB, {n_params} parameters) in {wall:.0f} s; "
          + ", ".join(f"{s}px {accs[s]:.4f}" for s in SIZES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
