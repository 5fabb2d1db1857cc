"""The iGPT palette, the linear probe, fine-tuning and the chapter's claims."""
from ddpm_lib import data  # before torch: idle OpenMP threads sleep instead of spinning

import torch
from ddpm_lib import probe
from ddpm_lib.nets import transformer as TR
from ddpm_lib.quantize import fit_palette


def test_encode_decode_gives_the_nearest_palette_colour():
    x = data.load("shapes", n=64, image_size=8).x
    pal = fit_palette(x, 16, seed=0)
    tok = pal.encode(x)
    assert tok.shape == (64, 64) and tok.dtype == torch.long
    pix = x.permute(0, 2, 3, 1).reshape(-1, 3)
    brute = ((pix[:, None, :] - pal.centers[None]) ** 2).sum(-1).argmin(1)  # nearest by brute force
    assert torch.equal(tok.reshape(-1), brute)
    dec = pal.decode(tok, 8)
    assert torch.equal(dec.permute(0, 2, 3, 1).reshape(-1, 3), pal.centers[brute])


def test_fit_is_deterministic_and_error_falls_with_k():
    x = data.load("digits").x[:300]
    a, b = fit_palette(x, 8, seed=3), fit_palette(x, 8, seed=3)
    assert torch.equal(a.centers, b.centers)
    errs = [fit_palette(x, k, seed=0).error(x) for k in (2, 4, 8, 16)]
    assert all(e1 > e2 for e1, e2 in zip(errs, errs[1:])), errs
    # digits hold 17 grey levels: 17 centres quantise them exactly
    assert fit_palette(x, 17, seed=0).error(x) < 1e-3


def test_linear_probe_separates_what_is_linearly_separable():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (600,), generator=g)
    feats = torch.randn(600, 8, generator=g) + 3 * torch.nn.functional.one_hot(y, 8).float()
    acc = probe.linear_probe(feats[:400], y[:400], feats[400:], y[400:])
    assert acc > 0.95
    noise = torch.randn(600, 8, generator=g)
    assert probe.linear_probe(noise[:400], y[:400], noise[400:], y[400:]) < 0.5


def test_layer_features_shapes():
    gpt = TR.GPT(TR.GPTConfig(vocab_size=8, block_size=16, n_layer=3, n_head=2, n_embd=16))
    tokens = torch.randint(0, 8, (10, 16))
    feats = probe.layer_features(gpt, tokens, batch_size=4)
    assert len(feats) == 4 and feats[0].shape == (10, 16)
    accs = probe.probe_layers(gpt, tokens, torch.arange(10) % 2, tokens, torch.arange(10) % 2)
    assert len(accs) == 4 and all(0 <= a <= 1 for a in accs)


def test_objectives_train_a_gpt_and_completions_keep_the_prefix():
    from ddpm_lib import autoregressive as AR
    from ddpm_lib import train as TRN

    g = torch.Generator().manual_seed(0)
    # sequences with structure: token i+1 = token i + 1 (mod 8), random start
    start = torch.randint(0, 8, (512, 1), generator=g)
    seqs = (start + torch.arange(16)) % 8
    gpt = TR.GPT(TR.GPTConfig(vocab_size=8, block_size=16, n_layer=2, n_head=2, n_embd=32))
    before = AR.eval_nll(gpt, seqs)["nats_per_token"]
    cfg = TRN.TrainConfig(train_images=150 * 64, batch_size=64, lr=3e-3, ema_decay=0.9, grad_clip=1.0)
    res = TRN.train(gpt, AR.ARObjective(), seqs, cfg, progress=False)
    after = AR.eval_nll(res.ema, seqs)
    # only the first token is unpredictable: log(8) / 16 nats per token is the floor
    assert before > 1.9 and after["nats_per_token"] < 0.4, (before, after)
    assert abs(after["bits_per_dim"] - after["nats_per_token"] / 0.6931471805599453) < 1e-9
    done = AR.complete(res.ema, seqs[:4], keep=5, n=2)
    assert done.shape == (2, 4, 16) and torch.equal(done[:, :, :5], seqs[:4, :5].expand(2, -1, -1))
    assert (done[:, :, 5:] == (seqs[:4, 5:])).float().mean() > 0.9  # it learned the rule
    # the masked objective trains a bidirectional model (vocabulary + 1 for the mask token)
    bert = TR.GPT(TR.GPTConfig(vocab_size=9, block_size=16, n_layer=2, n_head=2, n_embd=32, causal=False, sos=False))
    obj = AR.MaskedObjective(mask_token=8)
    res_b = TRN.train(bert, obj, seqs, cfg, progress=False)
    assert res_b.log[-1]["loss"] < 0.5 * res_b.log[0]["loss"]


def test_probe_hits_and_layer_selection_on_validation():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (400,), generator=g)
    feats = torch.randn(400, 8, generator=g) + 3 * torch.nn.functional.one_hot(y, 8).float()
    hits = probe.probe_hits(feats[:300], y[:300], feats[300:], y[300:])
    assert hits.shape == (100,) and hits.dtype == bool
    assert abs(hits.mean() - probe.linear_probe(feats[:300], y[:300], feats[300:], y[300:])) < 1e-12
    gpt = TR.GPT(TR.GPTConfig(vocab_size=8, block_size=16, n_layer=2, n_head=2, n_embd=16))
    tokens = torch.randint(0, 8, (40, 16), generator=g)
    r = probe.select_layer(gpt, tokens, torch.arange(40) % 2, tokens[:10], torch.arange(10) % 2)
    assert len(r["val"]) == len(r["test"]) == len(r["hits"]) == 3
    assert r["best"] == max(range(3), key=lambda i: r["val"][i])
    assert all(h.shape == (10,) for h in r["hits"])


def test_fine_tuning_learns_a_label_with_either_objective():
    from ddpm_lib import train as TRN

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (256,), generator=g)
    # the label is the sequence's constant token parity: 0/2/4/6 vs 1/3/5/7
    seqs = (2 * torch.randint(0, 4, (256, 1), generator=g) + y[:, None]).expand(-1, 16).contiguous()
    cfg = TRN.TrainConfig(train_images=60 * 32, batch_size=32, lr=3e-3, ema_decay=0.9)
    for causal, mask in ((True, None), (False, 8)):
        gpt = TR.GPT(TR.GPTConfig(vocab_size=9, block_size=16, n_layer=1, n_head=2, n_embd=16,
                                  causal=causal, sos=causal))
        model = probe.Classifier(gpt, 2)
        cls, logits = model(seqs[:3])
        assert cls.shape == (3, 2) and logits.shape == (3, 16, 9)
        res = TRN.train(model, probe.FineTuneObjective(1.0, mask_token=mask), (seqs, y), cfg, progress=False)
        hits = probe.classify_hits(res.ema, seqs[:64], y[:64])
        assert hits.shape == (64,) and hits.mean() > 0.9, (causal, hits.mean())

