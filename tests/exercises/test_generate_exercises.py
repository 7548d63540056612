"""Exercises of notebook 10 (learning to generate): the reference passes, the typical mistakes fail."""
import torch

from fslcourse.exercises import check


def test_predicted_weights_exercise(capsys):

    def mine(z, y, n_way, psi):
        return psi(torch.stack([z[y == k].mean(0) for k in range(n_way)]))

    def predictor_first(z, y, n_way, psi):  # the usual slip: predict from each shot, then average
        w = psi(z)
        return torch.stack([w[y == k].mean(0) for k in range(n_way)])

    assert check("predicted_weights", mine)
    assert not check("predicted_weights", predictor_first)
    assert not check("predicted_weights", lambda z, y, n, psi: torch.stack([z[y == k].mean(0) for k in range(n)]))
    assert "values differ" in capsys.readouterr().out


def test_fake_probability_exercise():
    assert check("fake_probability", lambda l, b: torch.softmax(torch.cat([l, b.expand(len(l), 1)], 1), 1)[:, -1])
    assert check("fake_probability", lambda l, b: torch.sigmoid(b - torch.logsumexp(l, 1)))
    # the textbook formula as written: exp() of ProtoNet-sized logits underflows to 0 / 0
    assert not check("fake_probability", lambda l, b: torch.exp(b) / (torch.exp(b) + torch.exp(l).sum(1)))
    # the usual slips: the fake logit left out of the denominator, or a sigmoid of b alone
    assert not check("fake_probability", lambda l, b: torch.exp(b) / torch.exp(l).sum(1))
    assert not check("fake_probability", lambda l, b: torch.sigmoid(b).expand(len(l)))


def test_recombined_character_exercise():
    assert check("recombined_character", lambda a, b: torch.where(a > b, a, b))
    # adding the two drawings overflows uint8 where strokes cross; averaging fades each stroke to half ink
    assert not check("recombined_character", lambda a, b: a + b)
    assert not check("recombined_character", lambda a, b: (a.int() + b.int()).clamp(max=255).to(torch.uint8))
    assert not check("recombined_character", lambda a, b: a | b)  # both passed on pure 0/255 pixels
    assert not check("recombined_character", lambda a, b: ((a.float() + b.float()) / 2).to(torch.uint8))


def test_hallucinator_loss_exercise(capsys):
    import torch.nn.functional as F

    from fslcourse.methods.base import prototypes
    from fslcourse.methods.protonet import protonet_logits

    def mine(z_s, y_s, z_q, y_q, hallucinate, m):
        gen, gen_y = hallucinate(z_s, y_s, m)
        n_way = int(y_s.max()) + 1
        protos = prototypes(torch.cat([z_s, gen]), torch.cat([y_s, gen_y]), n_way)
        return F.cross_entropy(protonet_logits(z_q, protos), y_q)

    def detached(z_s, y_s, z_q, y_q, hallucinate, m):  # the usual slip: generated features treated as data
        gen, gen_y = hallucinate(z_s, y_s, m)
        return mine(z_s, y_s, z_q, y_q, lambda *a: (gen.detach(), gen_y), m)

    def two_means(z_s, y_s, z_q, y_q, hallucinate, m):  # real and generated means weighted equally
        gen, gen_y = hallucinate(z_s, y_s, m)
        n_way = int(y_s.max()) + 1
        protos = (prototypes(z_s, y_s, n_way) + prototypes(gen, gen_y, n_way)) / 2
        return F.cross_entropy(protonet_logits(z_q, protos), y_q)

    assert check("hallucinator_loss", mine)
    assert not check("hallucinator_loss", detached)
    assert "no gradient reaches the hallucinator" in capsys.readouterr().out
    assert not check("hallucinator_loss", two_means)
    real_only = lambda z_s, y_s, z_q, y_q, h, m: F.cross_entropy(  # noqa: E731  (the hallucinations left out)
        protonet_logits(z_q, prototypes(z_s, y_s, int(y_s.max()) + 1)), y_q)
    assert not check("hallucinator_loss", real_only)


def test_recombined_character_needs_uint8(capsys):
    """An int64 or bool result passed (only float against non-float was told apart)."""
    assert not check("recombined_character", lambda a, b: torch.maximum(a.long(), b.long()))
    assert "expected dtype torch.uint8, got torch.int64" in capsys.readouterr().out
