"""unCLIP's pieces (ddpm_lib.nets.unclip, quantize's PCA buckets, metrics.within_caption_diversity,
chapters.unclip): shapes, causality, the best-of-candidates rule and the quantiser's round trip (the
chapter's claims: tests/test_claims_unclip.py)."""
from __future__ import annotations

import ddpm_lib  # noqa: F401  (before torch)

import pytest
import torch
import torch.nn.functional as F

from ddpm_lib import diffusion as D, metrics, objectives as OBJ, quantize as Q, sampling as smp, schedules as S, scorer, text
from ddpm_lib.chapters import unclip as CH
from ddpm_lib.nets import text_encoder as TE, unclip as UC, unet as U

TK = text.shapes_tokenizer()
TEXT = TE.TextEncoderConfig(vocab_size=TK.vocab_size, context=TK.context, width=16, layers=1, heads=2)
PRIOR = UC.PriorConfig(clip_dim=8, text=TEXT, width=16, layers=2, heads=2, pca_dims=4, buckets=6)


def _perturbed(net, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return net.eval()


def test_decoder_reads_the_embedding_on_both_routes_and_none_means_zero():
    unet = U.preset("tiny8", image_size=8, in_channels=3, out_channels=3, base_channels=8)
    dec = _perturbed(UC.UnCLIPDecoder(UC.DecoderConfig(TE.TextUNetConfig.of(unet, TEXT), clip_dim=8)))
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([10.0, 500.0])
    tok, z = TK.encode(["a red circle", "a blue square"]), torch.randn(2, 8)
    out = dec(x, t, tok, z)
    assert out.shape == (2, 3, 8, 8)
    assert torch.allclose(dec(x, t), dec(x, t, TK.empty(2), torch.zeros(2, 8)))
    assert not torch.allclose(out, dec(x, t, tok, torch.zeros(2, 8)))
    # each route alone changes the output
    with torch.no_grad():
        a = dec(x, t, tok, z)
        dec.z_tokens.weight.zero_(), dec.z_tokens.bias.zero_()
        b = dec(x, t, tok, z)
    assert not torch.allclose(a, b) and not torch.allclose(b, dec(x, t, tok, torch.zeros(2, 8)))


def test_diffusion_prior_reads_caption_text_embedding_and_noisy_input():
    p = _perturbed(UC.DiffusionPrior(PRIOR))
    x, t = torch.randn(3, 8), torch.tensor([1.0, 50.0, 900.0])
    tok, zt = TK.encode(["a red circle"] * 3), torch.randn(3, 8)
    out = p(x, t, tok, zt)
    assert out.shape == (3, 8)
    for other in (p(x + 1, t, tok, zt), p(x, t + 100, tok, zt), p(x, t, TK.empty(3), zt), p(x, t, tok, zt * 0)):
        assert not torch.allclose(out, other)


def test_ar_prior_is_causal_and_generate_keeps_the_first_token():
    p = _perturbed(UC.ARPrior(PRIOR))
    tok, zt = TK.encode(["a red circle", "a blue square"]), torch.randn(2, 8)
    codes = torch.randint(0, 6, (2, 5))
    logits = p(codes, tok, zt)
    assert logits.shape == (2, 5, 6)
    changed = codes.clone()
    changed[:, 3:] = (changed[:, 3:] + 1) % 6
    # logits[:, i] may depend on codes[:, :i] only
    assert torch.allclose(logits[:, :4], p(changed, tok, zt)[:, :4], atol=1e-6)
    assert not torch.allclose(logits[:, 4], p(changed, tok, zt)[:, 4])
    out = p.generate(tok, zt, first=torch.tensor([5, 2]), generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 5) and out[:, 0].tolist() == [5, 2] and ((out >= 0) & (out < 6)).all()
    loss = OBJ.ARPriorObjective(0.1)

    class B:  # a batch as train.Batch provides it
        x, extras = codes, {"tokens": tok, "z_text": zt}
        rand = staticmethod(lambda *s: torch.rand(2, *s))
    assert torch.isfinite(loss(p, B()))


def test_sample_prior_keeps_the_candidate_closest_to_the_text_embedding():
    p = _perturbed(UC.DiffusionPrior(PRIOR))
    diff = D.Diffusion(S.named("cosine", 100), "x0", "fixed_small", clip_denoised=False).respace("5")
    tok, zt = TK.encode(["a red circle"] * 16), F.normalize(torch.randn(16, 8), dim=-1)
    one = smp.sample_prior(p, diff, tok, zt, candidates=1, seed=3)
    best = smp.sample_prior(p, diff, tok, zt, candidates=4, seed=3)  # its first draw is `one`
    assert torch.allclose(one.norm(dim=-1), torch.ones(16), atol=1e-5)
    assert ((best * zt).sum(-1) >= (one * zt).sum(-1) - 1e-6).all()
    assert ((best * zt).sum(-1) > (one * zt).sum(-1) + 1e-6).any()


def test_embedding_scale_and_slerp():
    assert UC.embedding_scale(1024) == pytest.approx(17.2)
    assert UC.embedding_scale(64) == pytest.approx(17.2 / 4)
    a, b = F.normalize(torch.randn(5, 8), dim=-1), F.normalize(torch.randn(5, 8), dim=-1)
    assert torch.allclose(UC.slerp(a, b, 0.0), a, atol=1e-5) and torch.allclose(UC.slerp(a, b, 1.0), b, atol=1e-5)
    m = UC.slerp(a, b, 0.5)
    assert torch.allclose(m.norm(dim=-1), torch.ones(5), atol=1e-5)
    assert torch.allclose((m * a).sum(-1), (m * b).sum(-1), atol=1e-5)  # halfway: equal angles


def test_pca_quantizer_round_trip_and_equal_mass_buckets():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4000, 3, generator=g) @ torch.randn(3, 10, generator=g) + 2.0  # rank 3 in 10-d
    q = Q.fit_pca_quantizer(z, 3, 64)
    assert q.explained == pytest.approx(1.0, abs=1e-9)
    codes = q.encode(z)
    assert codes.shape == (4000, 3) and codes.min() >= 0 and codes.max() <= 63
    counts = torch.bincount(codes[:, 0], minlength=64)
    assert counts.min() >= 50 and counts.max() <= 75  # 4000 / 64 = 62.5 each
    err = ((q.decode(codes) - z) ** 2).sum(-1).mean() / ((z - z.mean(0)) ** 2).sum(-1).mean()
    assert err < 0.01
    assert Q.fit_pca_quantizer(z, 1, 8).explained < 0.9
    with pytest.raises(ValueError, match="dims"):
        Q.fit_pca_quantizer(z, 11, 8)
    with pytest.raises(ValueError, match="at least"):
        Q.fit_buckets(torch.randn(10, 1), 8)


def test_within_caption_diversity():
    f = torch.zeros(2, 3, 4)
    f[0, 1, 0] = 3.0  # caption 0: distances 3, 0, 3 over its 3 pairs -> mean 2
    d = metrics.within_caption_diversity(f)
    assert d.tolist() == pytest.approx([2.0, 0.0])
    with pytest.raises(ValueError, match="k >= 2"):
        metrics.within_caption_diversity(torch.zeros(4, 1, 3))


def test_recoloured_captions_change_only_the_first_colour():
    a = {"shape": torch.tensor([0, 1]), "colour": torch.tensor([0, 3]), "size": torch.tensor([0, 1]),
         "position": torch.tensor([4, 0]), "background": torch.tensor([1, 2]), "shape2": torch.tensor([2, 2]),
         "colour2": torch.tensor([5, 6]), "size2": torch.tensor([1, 1]), "position2": torch.tensor([8, 2])}
    caps = CH.recolour_captions(a, torch.tensor([2, 4]))
    parsed = scorer.parse_captions(caps)
    assert parsed["colour"].tolist() == [2, 4] and parsed["colour2"].tolist() == [5, 6]
    assert parsed["shape"].tolist() == [0, 1] and parsed["position2"].tolist() == [8, 2]
