"""Exercises of notebooks 02 and 04: the references pass, typical mistakes fail with a hint."""
import torch
import torch.nn.functional as F

from fslcourse.exercises import check


def test_cosine_logits_exercise(capsys):
    good = lambda q, c, s: s * F.normalize(q, dim=1) @ F.normalize(c, dim=1).T  # noqa: E731
    assert check("protonet_cosine_logits", good)
    assert not check("protonet_cosine_logits", lambda q, c, s: q @ c.T)  # forgot to normalise
    assert not check("protonet_cosine_logits", lambda q, c, s: F.normalize(q, dim=1) @ F.normalize(c, dim=1).T)
    assert "values differ" in capsys.readouterr().out


def test_entropy_exercise(capsys):
    good = lambda l: -(l.softmax(1) * l.log_softmax(1)).sum(1).mean()  # noqa: E731
    assert check("entropy_regulariser", good)
    assert not check("entropy_regulariser", lambda l: -(l.softmax(1) * l.log_softmax(1)).sum(1))  # no mean
    assert not check("entropy_regulariser", lambda l: -(l.softmax(1) * l.log_softmax(1)).sum())  # sum not mean
    naive = lambda l: -(l.softmax(1) * l.softmax(1).log()).sum(1).mean()  # noqa: E731  (fine until p underflows)
    assert not check("entropy_regulariser", naive)
    assert "expected shape ()" in capsys.readouterr().out


def test_the_spot_the_bug_protonet_loss_catches_the_source_article_bugs(capsys):
    """The loss of the source article groups the support by position and normalises over the wrong axis."""
    def fixed(z_support, support_y, z_query, query_y, n_way):
        protos = torch.stack([z_support[support_y == k].mean(0) for k in range(n_way)])
        return F.cross_entropy(-torch.cdist(z_query, protos) ** 2, query_y)

    def by_position(z_support, support_y, z_query, query_y, n_way):  # assumes the support is sorted by class
        protos = z_support.view(n_way, -1, z_support.shape[1]).mean(1)
        return F.cross_entropy(-torch.cdist(z_query, protos) ** 2, query_y)

    def over_queries(z_support, support_y, z_query, query_y, n_way):  # softmax over the queries, not the classes
        protos = torch.stack([z_support[support_y == k].mean(0) for k in range(n_way)])
        log_p = torch.log_softmax(-torch.cdist(z_query, protos) ** 2, dim=0)
        return -log_p[torch.arange(len(query_y)), query_y].mean()

    def plain_distance(z_support, support_y, z_query, query_y, n_way):  # Euclidean, not squared
        protos = torch.stack([z_support[support_y == k].mean(0) for k in range(n_way)])
        return F.cross_entropy(-torch.cdist(z_query, protos), query_y)

    def from_the_queries(z_support, support_y, z_query, query_y, n_way):  # prototypes of the query set
        protos = torch.stack([z_query[query_y == k].mean(0) for k in range(n_way)])
        return F.cross_entropy(-torch.cdist(z_query, protos) ** 2, query_y)

    def plus_distance(z_support, support_y, z_query, query_y, n_way):  # the sign: nearer scores lower
        protos = torch.stack([z_support[support_y == k].mean(0) for k in range(n_way)])
        return F.cross_entropy(torch.cdist(z_query, protos) ** 2, query_y)

    assert check("protonet_loss", fixed)
    capsys.readouterr()
    named = {by_position: "assume the support set is sorted by class", over_queries: "normalises over the queries",
             plain_distance: "not squared", from_the_queries: "come from the query set",
             plus_distance: "minus the distances"}
    for wrong, hint in named.items():  # each bug fails, and is named (notebook 02 asks the student to find them)
        assert not check("protonet_loss", wrong), wrong.__name__
        out = capsys.readouterr().out
        assert "values differ" in out and hint in out, (wrong.__name__, out)


def test_the_finetune_loop_exercise_catches_the_usual_slips(capsys):
    def loop(z_support, support_y, z_query, n_way, steps, lr, zero_grad=True, init="mean", data="support"):
        if init == "mean":
            weight = torch.stack([z_support[support_y == k].mean(0) for k in range(n_way)]).requires_grad_()
        else:
            weight = torch.zeros(n_way, z_support.shape[1], requires_grad=True)
        bias = torch.zeros(n_way, requires_grad=True)
        opt = torch.optim.Adam([weight, bias], lr=lr)
        for _ in range(steps):
            if zero_grad:
                opt.zero_grad()
            F.cross_entropy(z_support @ weight.T + bias, support_y).backward()
            opt.step()
        return (z_query @ weight.T + bias).detach()

    assert check("finetune_head", loop)
    capsys.readouterr()
    assert not check("finetune_head", lambda *a: loop(*a, zero_grad=False))  # gradients pile up across steps
    assert "values differ" in (out := capsys.readouterr().out) and "call optimizer.zero_grad()" in out  # named
    assert not check("finetune_head", lambda *a: loop(*a, init="zeros"))  # not started at the class means
    assert "start it at the class means" in capsys.readouterr().out


def test_the_finetune_loop_exercise_names_a_random_start_and_asks_for_detached_logits(capsys):
    def loop(z_support, support_y, z_query, n_way, steps, lr, init="mean", detach=True):
        weight = (torch.stack([z_support[support_y == k].mean(0) for k in range(n_way)]) if init == "mean"
                  else torch.randn(n_way, z_support.shape[1])).requires_grad_()
        bias = torch.zeros(n_way, requires_grad=True)
        opt = torch.optim.Adam([weight, bias], lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            F.cross_entropy(z_support @ weight.T + bias, support_y).backward()
            opt.step()
        logits = z_query @ weight.T + bias
        return logits.detach() if detach else logits

    assert not check("finetune_head", lambda *a: loop(*a, init="noise"))
    assert "starts from random values" in capsys.readouterr().out
    assert not check("finetune_head", lambda *a: loop(*a, detach=False))
    assert "the values are right, but your logits still carry" in capsys.readouterr().out


def test_entropy_without_a_gradient_fails(capsys):
    """A regulariser computed under no_grad has the right value and does nothing in training: it passed."""
    def no_grad(logits):
        with torch.no_grad():
            return -(logits.softmax(1) * logits.log_softmax(1)).sum(1).mean()

    assert not check("entropy_regulariser", no_grad)
    assert "carries no gradient" in capsys.readouterr().out


def test_class_means_by_reshape_fail_on_an_unsorted_support_set():
    """`z.reshape(n_way, -1, D).mean(1)` passed: every case's support set was sorted by class."""
    from fslcourse.exercises.finetune import finetune_head_reference

    def reshape_means(z_support, support_y, z_query, n_way, steps, lr):
        order = torch.arange(len(support_y))  # ignores the labels: assumes class-major order
        return finetune_head_reference(z_support[order], torch.arange(n_way).repeat_interleave(len(order) // n_way),
                                       z_query, n_way, steps, lr)

    assert not check("finetune_head", reshape_means)
    assert not check("predicted_weights", lambda z, y, n, psi: psi(z.reshape(n, -1, z.shape[1]).mean(1)))
