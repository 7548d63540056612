"""Widget update latency: after the first render, each update must take < 150 ms on the CPU.

Run: ``FSLCOURSE_DEVICE=cpu FSLCOURSE_DATA=/work/shared/data .venv/bin/python benchmarks/widgets.py``

Measures the full update path a click triggers (sample the episode, embed or
predict, draw, encode the PNG the notebook shows) for the latent explorer (seed,
N, K and backbone changes; PCA) and the prediction viewer (Next/Prev, one and
two methods side by side). Uses the committed ProtoNet checkpoint and Omniglot
when present, else an untrained ProtoNet on procedural glyphs. Prints the
median and worst update and their ratio to the 150 ms target.
"""
from __future__ import annotations

import contextlib
import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

TARGET_MS = 150.0


def timed(fn, repeats: int) -> list[float]:
    """Milliseconds of each of ``repeats`` calls ``fn(i)`` (outside a kernel, display() output is discarded)."""
    out = []
    for i in range(repeats):
        with contextlib.redirect_stdout(io.StringIO()):
            t = time.perf_counter()
            fn(i)
            out.append(1000 * (time.perf_counter() - t))
    return out


def report(name: str, ms: list[float], target: float = TARGET_MS) -> bool:
    """Print the median and worst of ``ms`` against ``target`` milliseconds; whether the median is under it."""
    med, worst = statistics.median(ms), max(ms)
    ok = med < target
    print(f"{name:<44} median {med:6.1f} ms  max {worst:6.1f} ms  median/target {med / target:4.2f}  "
          f"{'OK' if ok else 'SLOW'}")
    return ok


def main(repeats: int = 10) -> int:
    from fslcourse.config import get_device
    from fslcourse.data import find_omniglot, glyph_splits, load_omniglot
    from fslcourse.methods import PixelPrototype, ProtoNet
    from fslcourse.pretrained import checkpoint_path, pretrained
    from fslcourse.widgets.latent_explorer import LatentExplorer
    from fslcourse.widgets.prediction_viewer import PredictionViewer

    device = get_device()
    if find_omniglot() is not None and checkpoint_path("protonet").exists():
        split, model = load_omniglot(progress=False).test, pretrained("protonet", device=device)
        source = "Omniglot meta-test, committed protonet-quick checkpoint"
    else:
        split, model = glyph_splits()[2], ProtoNet().eval()
        source = "procedural glyphs, untrained ProtoNet (no Omniglot or checkpoint found)"
    torch.manual_seed(0)
    untrained = ProtoNet(**model.config()).to(device).eval()
    print(f"device={device.type}, threads={torch.get_num_threads()}, {source}; {repeats} updates each")

    ok = True
    with contextlib.redirect_stdout(io.StringIO()):
        ex = LatentExplorer(split, trained=model, untrained=untrained, n_way=5, n_shot=5, n_query=5, seed=0)
    ok &= report("latent explorer: seed change", timed(lambda i: setattr(ex.seed, "value", i + 1), repeats))
    ok &= report("latent explorer: N change (5..20)",
                 timed(lambda i: setattr(ex.n_way, "value", 5 + (i % 4) * 5), repeats))
    ok &= report("latent explorer: K change (1..5)", timed(lambda i: setattr(ex.n_shot, "value", 1 + i % 5), repeats))
    ok &= report("latent explorer: backbone toggle",
                 timed(lambda i: setattr(ex.backbone, "value", ("untrained", "trained")[i % 2]), repeats))
    with contextlib.redirect_stdout(io.StringIO()):
        v = PredictionViewer(model, split, n_way=5, n_shot=1, n_query=3, seed=0)
    ok &= report("prediction viewer: Next", timed(lambda i: v.next.click(), repeats))
    ok &= report("prediction viewer: Prev", timed(lambda i: v.prev.click(), repeats))
    with contextlib.redirect_stdout(io.StringIO()):
        v2 = PredictionViewer({"pixels": PixelPrototype(), "ProtoNet": model}, split, n_way=5, n_shot=1, n_query=3)
    ok &= report("prediction viewer, 2 methods: Next", timed(lambda i: v2.next.click(), repeats))
    tsne = timed(lambda i: setattr(ex.projection, "value", ("tsne", "pca")[i % 2]), 4)
    print(f"(t-SNE is optional and slower: toggling PCA/t-SNE takes up to {max(tsne):.0f} ms)")
    return 0 if ok else 1


def cli(argv=None) -> int:
    """``--help`` and ``--repeats N``; anything else is refused before the timing starts."""
    import argparse

    from fslcourse.cli import whole

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=whole(1), default=10, help="renders timed per widget and control (default 10)")
    return main(p.parse_args(argv).repeats)


if __name__ == "__main__":
    sys.exit(cli())
