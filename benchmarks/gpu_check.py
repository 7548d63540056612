"""The GPU profile, checked on a GPU: every ``full`` recipe trains, runs fast enough, and agrees with the CPU.

Usage (from the repository root, on the GPU machine; FSLCOURSE_DATA must point at the data):

    python benchmarks/gpu_check.py                      # cuda if available, else cpu; 200 steps each
    python benchmarks/gpu_check.py --device cuda:1 --steps 300 --out results/gpu_check.json

Dry run on a CPU, without Omniglot (two steps of every recipe; the checkpoint and widget checks are
skipped with a recorded reason):

    OMP_NUM_THREADS=1 python benchmarks/gpu_check.py --device cpu --steps 2 --data glyphs --out /tmp/gpu_check.json

Sized to finish in under 8 minutes on one GPU. In one run it

* **trains** every trainable method (the registered ``METHODS`` with ``RECIPES``, except ``test-*``) and every
  generator (the pixel VAE, the WGAN-GP DAGAN, the feature hallucinator, the diffusion U-Net) with its ``full``
  recipe for ``--steps`` steps (validation and training-state writing off), and records whether the loss fell
  (mean of the last quarter of the losses below the mean of the first quarter: a record, not a failure), the
  throughput after a warm-up (steps and examples per second), the peak device memory
  (``torch.cuda.max_memory_allocated``; null on a CPU) and a **projection** of the full recipe's training time
  (``recipe.steps / steps_per_second``; it leaves out validation, checkpoint writing and, for MTL, phase 1);
* **agrees**: loads every committed checkpoint on the device and on the CPU and compares their logits on
  ``--episodes`` fixed meta-test episodes (5-way 1-shot, 5 queries, seed 0): max |difference|, the tolerance and
  whether the argmax agrees;
* **renders** every widget of the notebooks with the committed models on the device.

It writes ONE JSON record (``--out``, atomically; rewritten after each part, ``"complete": true`` at the end) and
prints a table. A failing entry does not stop the others; the script exits 1 at the end naming the entries that
raised. The README's GPU column is filled from this record (docs/INSTRUCTORS.md, "Checking the GPU profile").
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from fslcourse.config import get_device  # noqa: E402
from fslcourse.data import EpisodeSampler  # noqa: E402
from fslcourse.io import atomic_write_json  # noqa: E402
from fslcourse.methods import METHODS  # noqa: E402
from fslcourse.pretrained import checkpoint_path, pretrained  # noqa: E402
from fslcourse.results import versions  # noqa: E402

GENERATORS = ("vae", "deformation-vae", "gan", "deformation-gan", "hallucinator", "diffusion")
PARTS = ("train", "agreement", "widgets")
WIDGETS = ("episode_browser", "latent_explorer", "prediction_viewer", "scale_shift_viewer", "adaptation_stepper",
           "vae_explorer", "gan_explorer", "diffusion_explorer")
TOLERANCE = 1e-3
PROJECTION_NOTE = ("projection, not a measurement: the full recipe's steps / the steps per second measured here "
                   "after warm-up; leaves out validation, checkpoint writing, data loading and (MTL) phase 1")
LEGEND = {
    "training[].steps": "optimizer steps run (steps_requested unless the run stopped early: see stopped)",
    "training[].seconds": "wall seconds of the training steps alone (to the end of the last step)",
    "training[].wall_seconds": "the whole entry: building the model, embedding features, training, the final "
                               "2-episode validation that fit() always runs",
    "training[].steps_per_second": "after leaving out the first warmup_steps steps (start-up, autotuning)",
    "training[].peak_memory_mb": "torch.cuda.max_memory_allocated during the entry, data on the device included "
                                 "(baseline_memory_mb was allocated before it started); null on a CPU",
    "training[].loss_fell": "mean of the last quarter of loss_key below the mean of its first quarter",
    "training[].projected_full_recipe_seconds": PROJECTION_NOTE,
    "agreement.entries[].max_abs_diff": "max |logit on the device - logit on the CPU| over every query of every "
                                        "episode",
}
# val_every=0 still validates once when fit() ends (training/loop.py); 2 episodes (evaluate's least) keep that cheap
NO_VALIDATION = dict(val_every=0, val_episodes=2, state_every=0)
AGREEMENT_RULE = "max |logit_device - logit_cpu| <= tolerance * max(1, max |logit_cpu|)"


# ---- small helpers ---------------------------------------------------------------------------------------------
def trainable_methods() -> list[str]:
    """The registered methods that have recipes (``test-*`` methods registered by tests are left out)."""
    return sorted(n for n, cls in METHODS.items()
                  if cls.trainable and getattr(cls, "RECIPES", None) and not n.startswith("test-"))


def error_of(err: BaseException) -> dict:
    """``{"type", "message"}`` with the first line of the message."""
    lines = str(err).strip().splitlines()
    return {"type": type(err).__name__, "message": lines[0] if lines else ""}


def check_writable(out: Path) -> None:
    """Refuse, before any work, an output path that is a folder or cannot be written (a trial file is made)."""
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file path such as {out / 'gpu_check.json'}")
    folder = out.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"cannot write --out {out}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write --out {out}: {folder} is not writable; choose another --out")
    if folder == out.parent:  # the folder exists: prove it with a trial file (os.access can be wrong for root)
        try:
            fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".check", dir=folder)
            os.close(fd)
            os.unlink(tmp)
        except OSError as err:
            raise ValueError(f"cannot write --out {out}: {err}") from None


def cuda(device: torch.device) -> bool:
    return device.type == "cuda"  # cuda-ok: only measures the device get_device chose


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if cuda(device) else "cpu"  # cuda-ok: names the chosen device


def reset_memory(device: torch.device) -> float | None:
    """Reset the peak-memory counter; returns the MB allocated now (the data already on the device), or None."""
    if not cuda(device):
        return None
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    return torch.cuda.memory_allocated(device) / 2**20


def peak_memory(device: torch.device) -> float | None:
    if not cuda(device):
        return None
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def load_data(kind: str, device: torch.device):
    """``train``/``val``/``test`` splits on ``device``: Omniglot, or procedural glyphs sized for every recipe."""
    if kind == "glyphs":
        from types import SimpleNamespace

        from fslcourse.data.procedural import make_glyph_split

        # 130 train classes: 128-class pre-training batches; 20-way within-alphabet episodes (tests/training)
        return SimpleNamespace(train=make_glyph_split(130, 20, seed=11, name="train").to(device),
                               val=make_glyph_split(80, 20, seed=12, name="val").to(device),
                               test=make_glyph_split(30, 20, seed=13, name="test").to(device))
    from fslcourse.data import load_omniglot

    return load_omniglot(device=device, progress=False, download=False)


# ---- part 1: training throughput ----------------------------------------------------------------------------
def examples_per_step(recipe) -> tuple[float, str]:
    """Training examples drawn per optimizer step, and what they are."""
    r, per_episode = recipe, recipe.n_way * (recipe.n_shot + recipe.n_query)
    if r.trainer in ("episodic", "meta-transfer"):
        return r.meta_batch * per_episode, "images" + (" (plus hard-task re-draws)" if r.trainer != "episodic" else "")
    if r.trainer == "pretrain":
        return r.n_way * r.n_shot, "images"
    if r.trainer == "vae":
        return per_episode, "images"
    if r.trainer == "gan":
        return r.options["n_critic"] * r.n_way * 2, "images (source and target per class, n_critic episodes)"
    if r.trainer == "hallucinator":
        return per_episode, "feature vectors"
    if r.trainer == "diffusion":
        return r.n_way * ((r.n_shot + 1) / 2 + r.n_query), "images (mean over the random k)"
    return float("nan"), "unknown"


def summarise_log(log: dict, loss_key: str) -> dict:
    """Throughput after warm-up and the loss trend from a run's flat log (``seconds`` cumulative per step)."""
    seconds, losses = log["seconds"], log[loss_key]
    n = len(seconds)
    warm = min(max(1, n // 10), n - 1)  # steps left out of the rate: CUDA start-up, cudnn autotuning, caches
    span = seconds[-1] - (seconds[warm - 1] if warm else 0.0)
    rate = (n - warm) / span if n and span > 0 else None
    q = max(1, len(losses) // 4)
    first, last = sum(losses[:q]) / q, sum(losses[-q:]) / q
    return {"warmup_steps": warm, "steps_per_second": rate, "loss_key": loss_key, "loss_first_quarter": first,
            "loss_last_quarter": last, "loss_fell": bool(last < first)}


def train_method(name: str, steps: int, data, device) -> tuple[dict, object]:
    """Train method ``name``'s full recipe for ``steps`` steps: ``(log dict, recipe)``."""
    from fslcourse.methods.mtl import PHASE1
    from fslcourse.training import train

    recipe = METHODS[name].RECIPES["full"]
    extra = {}
    if recipe.trainer == "meta-transfer":  # phase 1 is measured as mtl-theta-only; here one step is enough
        extra["phase1"] = PHASE1["full"].replace(steps=1, **NO_VALIDATION)
    _, result = train(name, "full", data=data, save=False, device=device, progress=False, steps=steps,
                      **NO_VALIDATION, **extra)
    log = result.log.as_dict()
    log.update(steps_done=result.steps, stopped=result.stopped)
    return log, recipe


def protonet_backbone(device):
    """The committed ProtoNet backbone: what the hallucinator and the diffusion model are built on."""
    return pretrained("protonet", device=device).backbone.eval()


def train_generator(name: str, steps: int, data, device) -> tuple[dict, object]:
    """Train generator ``name``'s full recipe for ``steps`` steps: ``(history dict, recipe)``."""
    from fslcourse.training import generators as G

    short = dict(steps=steps, **NO_VALIDATION)
    if name == "vae":
        from fslcourse.generative.vae import ConditionalVAE
        recipe = G.VAE["full"]["pixel"]
        r = recipe.replace(**short)
        torch.manual_seed(r.seed)
        hist = G.train_vae(ConditionalVAE(**r.model).to(device), data.train, r, progress=False)
    elif name == "deformation-vae":
        recipe = G.DEFORMATION_VAE["full"]
        r = recipe.replace(**short)
        torch.manual_seed(r.seed)
        hist = G.train_vae(G.DeformationVAE(**r.model).to(device), data.train, r, progress=False)
    elif name == "gan":
        recipe = G.GAN["full"]
        r = recipe.replace(**short)
        torch.manual_seed(r.seed)
        hist = G.train_gan(G.make_dagan(r).to(device), data.train, r, progress=False)
    elif name == "deformation-gan":
        recipe = G.DEFORMING_GAN["full"]
        r = recipe.replace(**short)
        torch.manual_seed(r.seed)
        hist = G.train_gan(G.make_dagan(r).to(device), data.train, r, progress=False)
    elif name == "hallucinator":
        recipe = G.HALLUCINATOR["full"]
        r = recipe.replace(**short)
        backbone = protonet_backbone(device)
        ids = torch.randperm(data.train.n_classes, generator=torch.Generator().manual_seed(r.seed))
        with torch.no_grad():
            feats = G.embed_split(backbone, data.train, ids[:r.options["max_classes"]])  # (n_classes, 20, D)
        torch.manual_seed(r.seed)
        model = G.FeatureHallucinator(feature_dim=feats.shape[-1], **r.model).to(feats.device)
        model.scale.fill_(feats.pow(2).mean().sqrt().item())
        hist = G.train_hallucinator(model, G.FeatureSplit(data.train.name, feats), r, progress=False)
    elif name == "diffusion":
        recipe = G.DIFFUSION["full"]
        r = recipe.replace(**short)
        backbone = protonet_backbone(device)
        torch.manual_seed(r.seed)
        schedule = G.Schedule(r.options["noise_schedule"], r.options["T"], device)
        with torch.no_grad():
            cond_dim = backbone(torch.zeros(1, 1, 28, 28, device=device)).shape[1]
        model = G.UNet(cond_dim=cond_dim, **r.model).to(device)
        _, hist = G.train_diffusion(model, backbone, data.train, schedule, r, progress=False)
    else:
        raise ValueError(f"{name!r} is not a generator; use one of {', '.join(GENERATORS)}")
    hist = dict(hist)
    hist.update(steps_done=hist["steps"], stopped=hist.get("stopped") or "steps")
    return hist, recipe


def check_training(name: str, kind: str, steps: int, data, device) -> dict:
    """One training entry; an exception is recorded in ``error``, never raised."""
    entry = {"name": name, "kind": kind, "recipe": "full", "steps_requested": steps, "steps": 0, "error": None}
    start = time.perf_counter()
    try:
        entry["baseline_memory_mb"] = reset_memory(device)
        log, recipe = (train_method if kind == "method" else train_generator)(name, steps, data, device)
        entry["peak_memory_mb"] = peak_memory(device)
        entry.update(trainer=recipe.trainer, recipe_summary=recipe.summary(), steps=log["steps_done"],
                     stopped=log["stopped"], seconds=log["seconds"][-1], cpu_seconds=log["cpu_seconds"][-1])
        loss_key = "loss" if "loss" in log else "loss_d"
        entry.update(summarise_log(log, loss_key))
        if loss_key == "loss_d":
            entry["loss_note"] = "the critic's loss: falling shows the critic learns, not that the samples are good"
        per_step, unit = examples_per_step(recipe)
        rate = entry["steps_per_second"]
        entry.update(examples_per_step=per_step, examples_unit=unit,
                     examples_per_second=rate * per_step if rate else None, full_recipe_steps=recipe.steps,
                     projected_full_recipe_seconds=recipe.steps / rate if rate else None,
                     projection_note=PROJECTION_NOTE)
    except Exception as err:  # one entry's failure must not stop the others
        entry["error"] = error_of(err)
        entry.setdefault("peak_memory_mb", None)
    entry["wall_seconds"] = time.perf_counter() - start
    if cuda(device):
        torch.cuda.empty_cache()
    return entry


# ---- part 2: device vs CPU agreement of the committed checkpoints ----------------------------------------------
def episodes(data, n: int) -> list:
    """``n`` fixed meta-test episodes (5-way 1-shot, 5 queries, seed 0), on the CPU."""
    sampler = EpisodeSampler(data.test, 5, 1, 5, seed=0)
    return [sampler.sample().to("cpu") for _ in range(n)]


def logits_of(model, ep, device) -> torch.Tensor:
    ep = ep.to(device)
    torch.manual_seed(0)
    with torch.set_grad_enabled(getattr(model, "needs_grad_at_test", False)):
        return model.predict(ep.support_x, ep.support_y, ep.query_x).detach().double().cpu()


def check_agreement(name: str, eps: list, device, tolerance: float) -> dict:
    """Device logits against CPU logits of the committed checkpoint of ``name`` on the same episodes."""
    entry = {"name": name, "checkpoint": checkpoint_path(name).name, "error": None}
    start = time.perf_counter()
    try:
        on_cpu, on_device = pretrained(name, device="cpu"), pretrained(name, device=device)
        diff, scale, disagree, total = 0.0, 0.0, 0, 0
        for ep in eps:
            a, b = logits_of(on_cpu, ep, torch.device("cpu")), logits_of(on_device, ep, device)
            diff = max(diff, (a - b).abs().max().item())
            scale = max(scale, a.abs().max().item())
            disagree += int((a.argmax(1) != b.argmax(1)).sum())
            total += len(a)
        entry.update(max_abs_diff=diff, logit_scale=scale, tolerance=tolerance,
                     within_tolerance=bool(diff <= tolerance * max(1.0, scale)),
                     argmax_agrees=disagree == 0, argmax_disagreements=disagree, queries=total)
    except Exception as err:
        entry["error"] = error_of(err)
    entry["seconds"] = time.perf_counter() - start
    return entry


# ---- part 3: the notebooks' widgets with models on the device --------------------------------------------------
def build_widget(name: str, data, device):
    """The widget ``name`` built as its notebook builds it, with the committed models on ``device``."""
    from fslcourse.io import load_checkpoint
    from fslcourse.training import generators as G
    from fslcourse.training import load_or_train

    if name == "episode_browser":
        from fslcourse.widgets.episode_browser import EpisodeBrowser
        return EpisodeBrowser({"train": data.train, "val": data.val, "test": data.test}, n_way=5, n_shot=1,
                              n_query=2)
    if name == "latent_explorer":
        from fslcourse.methods import ProtoNet
        from fslcourse.widgets.latent_explorer import LatentExplorer
        model = pretrained("protonet", device=device)
        torch.manual_seed(0)
        untrained = ProtoNet(**model.config()).to(device).eval()
        return LatentExplorer(data.test, trained=model, untrained=untrained, n_way=5, n_shot=5, n_query=5, seed=0)
    if name == "prediction_viewer":
        from fslcourse.methods import PixelPrototype
        from fslcourse.widgets.prediction_viewer import PredictionViewer
        methods = {"pixels": PixelPrototype(), "ProtoNet": pretrained("protonet", device=device),
                   "MAML": pretrained("maml", device=device)}
        return PredictionViewer(methods, data.test, n_way=5, n_shot=1, n_query=3, seed=0)
    if name == "scale_shift_viewer":
        from fslcourse.widgets.scale_shift_viewer import ScaleShiftViewer
        return ScaleShiftViewer(data.test, pretrained("mtl", device=device), n_way=5, n_shot=1, n_query=5, seed=0)
    if name == "adaptation_stepper":  # notebook 05 keeps the sinusoid regressors on the CPU; so does this check
        from fslcourse.widgets.adaptation_stepper import AdaptationStepper
        if not (G.CHECKPOINT_DIR / "sinusoid-quick.pt").exists():
            raise FileNotFoundError("no sinusoid-quick.pt checkpoint (never trained inside this check)")
        models = load_or_train("sinusoid", save=False)["models"]
        return AdaptationStepper({"MAML": models["maml_k10"], "pretrained": models["pretrained"]}, n_shot=10,
                                 inner_lr=0.01, max_steps=10, seed=0)
    if name == "vae_explorer":
        from fslcourse.widgets.vae_explorer import VAEExplorer
        path = G.checkpoint_file("vae")
        if not path.exists() or "pixel" not in load_checkpoint(path):
            raise FileNotFoundError(f"no pixel VAE in {path.name} (never trained inside this check)")
        vae = load_or_train("vae", "quick", data=data, device=device, progress=False, save=False)["pixel"]
        return VAEExplorer(vae, data.test, n_classes=8, n_shot=1, n_generated=5, seed=0)
    if name == "gan_explorer":
        from fslcourse.widgets.gan_explorer import GANExplorer
        path = G.checkpoint_file("gan")
        if not path.exists() or not {"wgan-gp", "standard"} <= set(load_checkpoint(path).get("pixel", {})):
            raise FileNotFoundError(f"no pixel DAGANs in {path.name} (never trained inside this check)")
        gans = load_or_train("gan", "quick", data=data, device=device, progress=False, save=False)
        return GANExplorer(gans["wgan-gp"], data.test, n_classes=8, seed=0)
    if name == "diffusion_explorer":
        from fslcourse.widgets.diffusion_explorer import DiffusionExplorer
        if not G.checkpoint_file("diffusion").exists():
            raise FileNotFoundError("no diffusion-quick.pt checkpoint (never trained inside this check)")
        backbone = protonet_backbone(device)
        out = load_or_train("diffusion", "quick", data=data, backbone=backbone, device=device, progress=False,
                            save=False)
        return DiffusionExplorer(out["model"], out["schedule"], backbone, data.test, n_classes=8, n_shot=5,
                                 n_samples=4, seed=0)
    raise ValueError(f"{name!r} is not a widget; use one of {', '.join(WIDGETS)}")


def check_widget(name: str, data, device) -> dict:
    entry = {"name": name, "rendered": False, "error": None}
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # outside a kernel, display() prints reprs
            widget = build_widget(name, data, device)
            widget.render()
        entry["rendered"] = True
        entry["model_device"] = "cpu (as in notebook 05)" if name == "adaptation_stepper" else str(device)
    except Exception as err:
        entry["error"] = error_of(err)
    finally:
        import matplotlib.pyplot as plt
        plt.close("all")
    entry["seconds"] = time.perf_counter() - start
    return entry


# ---- the table ---------------------------------------------------------------------------------------------------
def _num(x, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _hours(seconds) -> str:
    if seconds is None:
        return "-"
    h, rest = divmod(int(round(seconds)), 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


def print_table(record: dict) -> None:
    rows = record.get("training", [])
    each = f", {record['steps']} steps each" if rows else ""
    print(f"\n{record['device_name']} ({record['device']}), data {record['data']}{each}")
    if rows:
        print(f"\n{'training (full recipe)':<16} {'steps':>5} {'seconds':>8} {'steps/s':>8} {'examples/s':>10} "
              f"{'peak MB':>8} {'loss fell':>9} {'PROJECTED full':>15}  error")
        for e in rows:
            err = f"{e['error']['type']}: {e['error']['message']}" if e["error"] else ""
            fell = "-" if "loss_fell" not in e else ("yes" if e["loss_fell"] else "NO")
            print(f"{e['name']:<16} {e['steps']:>5} {_num(e.get('seconds'), '.1f'):>8} "
                  f"{_num(e.get('steps_per_second'), '.2f'):>8} {_num(e.get('examples_per_second'), '.0f'):>10} "
                  f"{_num(e.get('peak_memory_mb'), '.0f'):>8} {fell:>9} "
                  f"{_hours(e.get('projected_full_recipe_seconds')):>15}  {err}")
        print("PROJECTED full = the full recipe's steps / the measured steps per second: a projection, not a "
              "measured run (no validation, no checkpoint writing, no MTL phase 1).")
    for part, label in (("agreement", "device vs CPU logits"), ("widgets", "widgets rendered")):
        section = record.get(part)
        if section is None:
            continue
        if "skipped" in section:
            print(f"\n{label}: skipped ({section['skipped']})")
            continue
        print(f"\n{label}" + (f" (tolerance {section['tolerance']:g}: {section['rule']})" if part == "agreement"
                              else ""))
        for e in section["entries"]:
            err = f"  {e['error']['type']}: {e['error']['message']}" if e["error"] else ""
            if part == "agreement":
                ok = ""
                if not e["error"]:
                    argmax = "agrees" if e["argmax_agrees"] else f"differs on {e['argmax_disagreements']} queries"
                    ok = (f"max |diff| {e['max_abs_diff']:.2e} (scale {e['logit_scale']:.3g}) "
                          f"{'ok' if e['within_tolerance'] else 'OUTSIDE TOLERANCE'}, argmax {argmax}")
                print(f"  {e['name']:<16} {ok}{err}")
            else:
                print(f"  {e['name']:<20} {'ok' if e['rendered'] else 'FAILED'} ({e['seconds']:.1f} s){err}")


# ---- main ----------------------------------------------------------------------------------------------------------
def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: FSLCOURSE_DEVICE, else cuda if "
                                                  "available, else cpu)")
    p.add_argument("--steps", type=int, default=200, help="training steps of each full recipe (default 200)")
    p.add_argument("--methods", default=None,
                   help=f"comma-separated methods and generators ({', '.join(GENERATORS)}); default: all")
    p.add_argument("--episodes", type=int, default=3, help="fixed meta-test episodes of the agreement check")
    p.add_argument("--tolerance", type=float, default=TOLERANCE, help=f"agreement tolerance (default {TOLERANCE:g})")
    p.add_argument("--data", choices=("omniglot", "glyphs"), default="omniglot",
                   help="training data; glyphs (procedural, no files) is for the CPU dry run and skips the "
                        "agreement and widget checks")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated parts to run (default {','.join(PARTS)})")
    p.add_argument("--out", default="results/gpu_check.json", help="the JSON record (default results/gpu_check.json)")
    args = p.parse_args(argv)
    known = trainable_methods() + list(GENERATORS)
    args.names = known if args.methods is None else [n.strip() for n in args.methods.split(",") if n.strip()]
    unknown = [n for n in args.names if n not in known]
    if unknown:
        p.error(f"--methods: {', '.join(unknown)} not known; use some of {', '.join(known)}")
    args.part_list = [s.strip() for s in args.parts.split(",") if s.strip()]
    if not args.part_list or set(args.part_list) - set(PARTS):
        p.error(f"--parts {args.parts!r}: use some of {', '.join(PARTS)}")
    for option, value in (("--steps", args.steps), ("--episodes", args.episodes)):
        if value < 1:
            p.error(f"{option} {value}: give 1 or more")
    if not args.tolerance > 0:
        p.error(f"--tolerance {args.tolerance}: give a positive number (a relative difference, e.g. 1e-4)")
    return p, args


def main(argv=None) -> int:
    import matplotlib

    matplotlib.use("Agg")  # widgets draw with matplotlib; no display on a GPU server (set here, not at import:
    # an importing process, e.g. pytest running notebooks, keeps its own backend and environment)
    parser, args = parse_args(argv)
    out = Path(args.out)
    try:  # everything that can be refused is refused before any work
        check_writable(out)
        device = get_device(args.device)
    except ValueError as err:
        parser.error(str(err))
    if args.data == "omniglot":
        from fslcourse.data import find_omniglot
        if find_omniglot() is None:
            parser.error("Omniglot not found: set FSLCOURSE_DATA to the folder holding omniglot/, or use "
                         "--data glyphs (the CPU dry run)")
    start = time.perf_counter()
    record = {"kind": "gpu_check", "complete": False, "device": str(device), "device_name": device_name(device),
              "versions": versions(), "data": args.data, "steps": args.steps, "parts": args.part_list,
              "names": args.names, "threads": torch.get_num_threads(),
              "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32},
              "projection_note": PROJECTION_NOTE, "legend": LEGEND}
    data = load_data(args.data, device)
    record["data_seconds"] = time.perf_counter() - start
    methods = [n for n in args.names if n not in GENERATORS]

    def save():
        record["seconds"] = time.perf_counter() - start
        atomic_write_json(record, out)

    if "train" in args.part_list:
        record["training"] = []
        for name in args.names:
            kind = "generator" if name in GENERATORS else "method"
            print(f"training {name} ({kind}, full recipe, {args.steps} steps) on {device} ...", flush=True)
            record["training"].append(check_training(name, kind, args.steps, data, device))
            save()
    need_omniglot = f"needs Omniglot (--data omniglot); this run used --data {args.data}"
    if "agreement" in args.part_list:
        if args.data != "omniglot":
            record["agreement"] = {"skipped": need_omniglot}
        else:
            eps = episodes(data, args.episodes)
            names = [n for n in methods if checkpoint_path(n).exists()]
            record["agreement"] = {
                "protocol": {"split": "test", "n_way": 5, "n_shot": 1, "n_query": 5, "episodes": args.episodes,
                             "seed": 0},
                "tolerance": args.tolerance, "rule": AGREEMENT_RULE,
                "no_checkpoint": [n for n in methods if n not in names], "entries": []}
            if not cuda(device):
                record["agreement"]["note"] = f"the device is {device}: this compares it with the CPU (a dry run)"
            for name in names:
                print(f"agreement {name}: {device} vs cpu ...", flush=True)
                record["agreement"]["entries"].append(check_agreement(name, eps, device, args.tolerance))
        save()
    if "widgets" in args.part_list:
        if args.data != "omniglot":
            record["widgets"] = {"skipped": need_omniglot}
        else:
            record["widgets"] = {"entries": []}
            for name in WIDGETS:
                print(f"widget {name} ...", flush=True)
                record["widgets"]["entries"].append(check_widget(name, data, device))
        save()
    failed = [f"training:{e['name']}" for e in record.get("training", []) if e["error"]]
    for part in ("agreement", "widgets"):
        failed += [f"{part}:{e['name']}" for e in record.get(part, {}).get("entries", []) if e["error"]]
    attention = [f"training:{e['name']} (loss did not fall)" for e in record.get("training", [])
                 if e.get("loss_fell") is False]
    attention += [f"agreement:{e['name']} ({'outside tolerance' if not e['within_tolerance'] else 'argmax differs'})"
                  for e in record.get("agreement", {}).get("entries", [])
                  if not e["error"] and not (e["within_tolerance"] and e["argmax_agrees"])]
    record.update(failed=failed, attention=attention, complete=True)
    save()
    print_table(record)
    print(f"\nwrote {out} ({record['seconds']:.0f} s)")
    if attention:
        print("to look at (recorded, not failures): " + "; ".join(attention))
    if failed:
        print(f"FAILED ({len(failed)}): " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
