"""ProtoNet quick recipe against a learn2learn-style ProtoNet loop: speed and accuracy for the same steps.

Run (a few minutes):
``FSLCOURSE_DEVICE=cpu FSLCOURSE_DATA=/work/shared/data .venv/bin/python benchmarks/protonet_vs_l2l.py --steps 1000``

Both runs train the same model (``ProtoNet`` with the quick recipe's Conv-4), with
the same episode sizes, optimiser and learning-rate schedule, for the same number of steps:

* **fslcourse**: ``fslcourse.training.train("protonet", "quick", steps=N)`` (the one loop: our
  seeded ``EpisodeSampler``, periodic meta-validation, keeps the best weights);
* **learn2learn**: the loop of learn2learn's ``examples/vision/protonet_omniglot.py``:
  ``l2l.data.MetaDataset`` + ``TaskDataset`` with ``NWays``/``KShots``/``LoadData``/
  ``RemapLabels``/``ConsecutiveLabels`` transforms over the same meta-train split,
  sort by label, support/query masks, prototype mean, negative squared distances.

Both models are then evaluated with :func:`fslcourse.evaluate.evaluate` on the
same fixed 5-way 1-shot meta-test episodes (seed 0). Neither loop validates (both keep their last weights).
Printed: steps per second of each run in interleaved rounds (the order alternates) and the median ratio
fslcourse / learn2learn; accuracy ± 95% CI; and the paired difference on the same episodes, "unclear" when its
interval contains 0.
"""
from __future__ import annotations

import argparse
import statistics
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


def train_l2l(model, split, recipe, seed: int):
    """learn2learn's ProtoNet example loop, for ``recipe.steps`` steps; returns ``(steps, seconds)``."""
    import learn2learn as l2l
    from learn2learn.data.transforms import ConsecutiveLabels, KShots, LoadData, NWays, RemapLabels

    from fslcourse.training.schedules import make_scheduler

    ways, shot, query = recipe.n_way, recipe.n_shot, recipe.n_query
    dataset = SplitDataset(split)
    labels_to_indices = {c: list(range(c * dataset.n, (c + 1) * dataset.n)) for c in range(split.n_classes)}
    meta = l2l.data.MetaDataset(dataset, labels_to_indices=labels_to_indices)
    tasks = l2l.data.TaskDataset(meta, task_transforms=[
        NWays(meta, ways), KShots(meta, shot + query), LoadData(meta), RemapLabels(meta), ConsecutiveLabels(meta)],
        num_tasks=-1)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    scheduler = make_scheduler(optimizer, recipe)
    torch.manual_seed(seed)
    import random
    random.seed(seed)
    model.train()
    start, steps = time.perf_counter(), 0
    while steps < recipe.steps:
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    from fslcourse.cli import SEED_MAX, whole

    parser.add_argument("--steps", type=whole(1), default=1000, help="training steps of each run")
    parser.add_argument("--episodes", type=whole(2), default=200, help="5-way 1-shot test episodes")
    parser.add_argument("--seed", type=whole(0, SEED_MAX), default=0)
    parser.add_argument("--rounds", type=whole(1), default=3, help="interleaved timing rounds (the median ratio)")
    args = parser.parse_args(argv)

    from fslcourse.config import seed_everything
    from fslcourse.data import load_omniglot
    from fslcourse.evaluate import evaluate
    from fslcourse.methods import ProtoNet
    from fslcourse.report import paired_episodes, verdict
    from fslcourse.training import train

    data = load_omniglot(progress=False, device="cpu")
    # like for like: no meta-validation in either loop, so both keep their last weights and time only training
    recipe = ProtoNet.RECIPES["quick"].replace(steps=args.steps, seed=args.seed, val_every=0)
    print(f"{args.steps} steps per run, {args.rounds} interleaved rounds, torch threads {torch.get_num_threads()}, "
          f"recipe {recipe.summary()}")

    def ours():
        model, fit = train("protonet", recipe, data=data, save=False, device="cpu", progress=False)
        return model, fit.steps, fit.log.seconds[-1]  # at the last step: fit's final validation is not training

    def theirs():
        seed_everything(args.seed)
        model = ProtoNet(**recipe.model)
        return (model, *train_l2l(model, data.train, recipe, args.seed))

    ratios, models = [], {}
    for i in range(args.rounds):  # alternate who goes first, so that a drift of the machine's speed favours neither
        order = [("fslcourse", ours), ("learn2learn", theirs)][:: 1 if i % 2 == 0 else -1]
        runs = {name: run() for name, run in order}
        (_, s1, t1), (_, s2, t2) = runs["fslcourse"], runs["learn2learn"]
        ratios.append((s1 / t1) / (s2 / t2))
        print(f"round {i + 1}: fslcourse {s1 / t1:5.2f} steps/s, learn2learn {s2 / t2:5.2f} steps/s, "
              f"ratio {ratios[-1]:.2f}", flush=True)
        models = {name: run[0] for name, run in runs.items()}  # the same seed every round: the same weights
    results = {name: evaluate(model, data.test, 5, 1, n_query=5, n_episodes=args.episodes, seed=0)
               for name, model in models.items()}
    for name, res in results.items():
        print(f"{name:>12}: 5-way 1-shot {res.accuracy:5.1f}% ± {res.ci95:.1f}% ({args.episodes} episodes, seed 0)")
    diff, ci = paired_episodes(results["fslcourse"].episode_accuracies, results["learn2learn"].episode_accuracies)
    word = {True: "fslcourse higher", False: "learn2learn higher", None: "unclear (the interval contains 0)"}
    print(f"steps per second, fslcourse / learn2learn: median {statistics.median(ratios):.2f} over {args.rounds} "
          f"rounds ({', '.join(f'{r:.2f}' for r in ratios)})")
    print(f"accuracy, paired on the same episodes: {diff:+.1f} ± {ci:.1f} points -> {word[verdict(diff, ci)]}")


if __name__ == "__main__":
    main()
