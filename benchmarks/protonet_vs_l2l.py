"""ProtoNet quick profile against a learn2learn-style ProtoNet loop: accuracy for the same training time.

Run (about 2 × SECONDS plus a minute of evaluation):
``FSLCOURSE_DEVICE=cpu FSLCOURSE_DATA=/work/shared/data .venv/bin/python benchmarks/protonet_vs_l2l.py --seconds 60``

Both runs train the same model (``ProtoNet`` with the quick recipe's Conv-4), with
the same episode sizes (60-way 1-shot, 2 queries per class), optimiser and
learning-rate schedule, for the same wall-time budget:

* **fslcourse**: ``ProtoNet.train_recipe`` (``fslcourse.train.fit``: our seeded
  ``EpisodeSampler``, periodic meta-validation, keeps the best weights);
* **learn2learn**: the loop of learn2learn's ``examples/vision/protonet_omniglot.py``:
  ``l2l.data.MetaDataset`` + ``TaskDataset`` with ``NWays``/``KShots``/``LoadData``/
  ``RemapLabels``/``ConsecutiveLabels`` transforms over the same meta-train split,
  sort by label, support/query masks, prototype mean, negative squared distances.

Both models are then evaluated with :func:`fslcourse.evaluate.evaluate` on the
same fixed 5-way 1-shot meta-test episodes (seed 0). Printed: steps, steps per
second, accuracy ± 95% CI, and the ratios fslcourse / learn2learn.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class SplitDataset(torch.utils.data.Dataset):
    """An ImageSplit as a flat (image, class id) dataset, the form learn2learn's MetaDataset wraps."""

    def __init__(self, split):
        self.split = split
        self.n = split.n_examples

    def __len__(self):
        return self.split.n_classes * self.n

    def __getitem__(self, i):
        c, e = divmod(int(i), self.n)
        return self.split.get(torch.tensor([c]), torch.tensor([[e]]))[0, 0], c  # (1, 28, 28), class id


def train_l2l(model, split, recipe: dict, seconds: float, seed: int):
    """learn2learn's ProtoNet example loop, for ``seconds`` of wall time; returns ``(steps, seconds)``."""
    import learn2learn as l2l
    from learn2learn.data.transforms import ConsecutiveLabels, KShots, LoadData, NWays, RemapLabels

    from fslcourse.methods.protonet import make_scheduler

    ways, shot, query = recipe["n_way"], recipe["n_shot"], recipe["n_query"]
    dataset = SplitDataset(split)
    labels_to_indices = {c: list(range(c * dataset.n, (c + 1) * dataset.n)) for c in range(split.n_classes)}
    meta = l2l.data.MetaDataset(dataset, labels_to_indices=labels_to_indices)
    tasks = l2l.data.TaskDataset(meta, task_transforms=[
        NWays(meta, ways), KShots(meta, shot + query), LoadData(meta), RemapLabels(meta), ConsecutiveLabels(meta)],
        num_tasks=-1)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
    scheduler = make_scheduler(optimizer, recipe, seconds)
    torch.manual_seed(seed)
    import random
    random.seed(seed)
    model.train()
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        data, labels = tasks.sample()
        order = torch.sort(labels).indices
        data, labels = data[order], labels[order]
        embeddings = model.embed(data)  # (ways * (shot + query), D)
        support_mask = torch.zeros(len(data), dtype=torch.bool)
        selection = torch.arange(ways) * (shot + query)
        for offset in range(shot):
            support_mask[selection + offset] = True
        support = embeddings[support_mask].reshape(ways, shot, -1).mean(dim=1)  # (ways, D)
        query_emb, query_y = embeddings[~support_mask], labels[~support_mask].long()
        logits = -torch.cdist(query_emb, support).pow(2)  # pairwise_distances_logits of the example
        loss = F.cross_entropy(logits, query_y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        steps += 1
    model.eval()
    return steps, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="training budget of each run")
    parser.add_argument("--episodes", type=int, default=200, help="5-way 1-shot test episodes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from fslcourse.config import seed_everything
    from fslcourse.data import load_omniglot
    from fslcourse.evaluate import evaluate
    from fslcourse.methods import ProtoNet

    data = load_omniglot(progress=False, device="cpu")
    recipe = dict(ProtoNet.RECIPES["quick"])
    print(f"budget {args.seconds:.0f} s per run, torch threads {torch.get_num_threads()}, recipe "
          f"{recipe['n_way']}-way {recipe['n_shot']}-shot {recipe['n_query']}-query, lr {recipe['lr']}")

    model_ours, fit = ProtoNet.train_recipe(data, "quick", seed=args.seed, device="cpu", progress=False,
                                            max_seconds=args.seconds)
    seed_everything(args.seed)
    model_l2l = ProtoNet(**recipe.get("model", {}))
    steps_l2l, secs_l2l = train_l2l(model_l2l, data.train, recipe, args.seconds, args.seed)

    rows = {}
    for name, model, steps, secs in (("fslcourse", model_ours, fit.steps, fit.seconds),
                                     ("learn2learn", model_l2l, steps_l2l, secs_l2l)):
        res = evaluate(model, data.test, 5, 1, n_query=5, n_episodes=args.episodes, seed=0)
        rows[name] = (steps, secs, res)
        print(f"{name:>12}: {steps:5d} steps in {secs:5.1f} s ({steps / secs:5.2f} steps/s) -> "
              f"5-way 1-shot {res.accuracy:5.1f}% ± {res.ci95:.1f}% ({args.episodes} episodes, seed 0)")
    (s1, t1, r1), (s2, t2, r2) = rows["fslcourse"], rows["learn2learn"]
    print(f"ratio fslcourse/learn2learn: steps per second {(s1 / t1) / (s2 / t2):.2f}, "
          f"accuracy {r1.accuracy / r2.accuracy:.3f} ({r1.accuracy - r2.accuracy:+.1f} points)")
    if not math.isclose(t1, t2, rel_tol=0.1):
        print("note: the two runs' wall times differ by more than 10%")


if __name__ == "__main__":
    main()
