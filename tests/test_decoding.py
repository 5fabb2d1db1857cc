"""One token sampler and one cached decoding loop (ddpm_lib.nets.transformer.sample_token / decode) for
the three token models: GPT (iGPT, DALL-E), the captioner (DALL-E 3) and unCLIP's AR prior.

Equivalence tests: cached == uncached decoding on small random models (greedy and with a seeded
generator), and each ``generate`` gives the tokens its earlier, separate implementation gave (kept
below as the reference: same multinomial calls on the same generator in the same order)."""
from __future__ import annotations

import ddpm_lib  # noqa: F401  (before torch)

import pytest
import torch

from ddpm_lib import text
from ddpm_lib.nets import captioner as NC, encoder as EN, text_encoder as TE, transformer as TR, unclip as UC


def _perturbed(net, seed=0, scale=0.1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return net.eval()


def _gpt():
    return _perturbed(TR.GPT(TR.GPTConfig(vocab_size=11, block_size=20, n_layer=3, n_head=2, n_embd=32)))


TK = text.shapes_tokenizer()
PRIOR = UC.PriorConfig(clip_dim=8, text=TE.TextEncoderConfig(vocab_size=TK.vocab_size, context=TK.context, width=16,
                                                             layers=1, heads=2),
                       width=16, layers=2, heads=2, pca_dims=6, buckets=7)


def _captioner(grid=False):
    image = EN.EncoderConfig(image_size=8, base_channels=8, channel_mult=(1, 2), attention_resolutions=(),
                             time_cond=False)
    cap = _perturbed(NC.Captioner(NC.CaptionerConfig(vocab_size=9, context=10, image=image, width=16, layers=2,
                                                     heads=2, grid=grid)), scale=0.6)
    with torch.no_grad():
        cap.head.bias[0] += 3.0 if grid else 1.0  # so that some captions end (padding) and others do not
    return cap


# ---- the earlier implementations, verbatim but for `self` -> `net` (the reference) ----------------
@torch.no_grad()
def _old_sample(logits, temperature, top_k, generator):
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    logits = logits / max(temperature, 1e-8)
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


@torch.no_grad()
def _old_gpt_generate(net, prefix, length, temperature=1.0, top_k=None, generator=None, use_cache=True,
                      vocab_range=None):
    seq = prefix.clone()
    B = seq.shape[0]
    cache = TR.KVCache(net.cfg.n_layer) if use_cache else None
    if use_cache:
        x = torch.cat([net.sos.expand(B, 1, -1), net.tok(seq)], 1) + net.pos[: seq.shape[1] + 1]
        for block in net.blocks:
            x = block(x, cache)
        logits = net.head(net.ln_f(x[:, -1]))
    while seq.shape[1] < length:
        if not use_cache:
            full = torch.cat([seq, seq.new_zeros(B, 1)], 1)
            logits = net(full)[:, -1]
        if vocab_range is not None:
            keep = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
            keep[vocab_range[0]:vocab_range[1]] = True
            logits = logits.masked_fill(~keep, float("-inf"))
        nxt = _old_sample(logits, temperature, top_k, generator)
        seq = torch.cat([seq, nxt[:, None]], 1)
        if use_cache and seq.shape[1] < length:
            pos = seq.shape[1]
            x = net.tok(nxt[:, None]) + net.pos[pos:pos + 1]
            for block in net.blocks:
                x = block(x, cache)
            logits = net.head(net.ln_f(x[:, -1]))
    return seq


@torch.no_grad()
def _old_caption(net, x, temperature=0.0, generator=None):
    B, L = x.shape[0], net.cfg.context
    tokens = torch.zeros(B, L, dtype=torch.long, device=x.device)
    done = torch.zeros(B, dtype=torch.bool, device=x.device)
    pre = net.prefix(x)
    for i in range(L):
        logits = net(x, tokens[:, :i + 1], prefix=pre)[:, i].float()
        if temperature <= 0:
            nxt = logits.argmax(-1)
        else:
            probs = torch.softmax(logits / temperature, -1)
            nxt = torch.multinomial(probs.cpu() if generator is not None and generator.device.type == "cpu"
                                    else probs, 1, generator=generator).squeeze(1).to(x.device)
        nxt = torch.where(done, torch.zeros_like(nxt), nxt)
        tokens[:, i] = nxt
        done |= nxt == 0
        if bool(done.all()):
            break
    return tokens


@torch.no_grad()
def _old_prior_codes(net, tokens, z_text, first=None, temperature=1.0, generator=None):
    B = tokens.shape[0]
    codes = torch.zeros(B, net.length, dtype=torch.long, device=tokens.device)
    for i in range(net.length):
        if i == 0 and first is not None:
            codes[:, 0] = first.to(codes.device)
            continue
        logits = net(codes, tokens, z_text)[:, i].float() / max(temperature, 1e-8)
        probs = torch.softmax(logits, -1)
        codes[:, i] = torch.multinomial(probs.cpu() if generator is not None and generator.device.type == "cpu"
                                        else probs, 1, generator=generator).squeeze(1).to(codes.device)
    return codes


def _g(seed):
    return torch.Generator().manual_seed(seed)


# ---- sample_token ----------------------------------------------------------------------------
def test_sample_token_is_greedy_at_zero_and_draws_like_the_old_samplers():
    logits = torch.randn(64, 13, generator=_g(0)) * 3
    assert torch.equal(TR.sample_token(logits, temperature=0.0), logits.argmax(-1))
    assert torch.equal(TR.sample_token(logits, temperature=0.0, top_k=3, generator=_g(1)), logits.argmax(-1))
    for temperature, top_k in ((1.0, None), (0.7, 4), (2.0, 1)):
        new = TR.sample_token(logits, temperature=temperature, top_k=top_k, generator=_g(5))
        assert torch.equal(new, _old_sample(logits, temperature, top_k, _g(5)))
    # top_k = 1 is the argmax; the draw stays within the top k
    assert torch.equal(TR.sample_token(logits, temperature=1.0, top_k=1, generator=_g(2)), logits.argmax(-1))
    top3 = torch.topk(logits, 3).indices
    drawn = TR.sample_token(logits, temperature=1.0, top_k=3, generator=_g(3))
    assert (top3 == drawn[:, None]).any(1).all()
    # half-precision logits are sampled in float32: the same draw
    assert torch.equal(TR.sample_token(logits.bfloat16(), temperature=1.0, generator=_g(4)),
                       TR.sample_token(logits.bfloat16().float(), temperature=1.0, generator=_g(4)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sample_token_takes_a_cpu_generator_for_cuda_logits():
    logits = torch.randn(8, 13, generator=_g(0))
    out = TR.sample_token(logits.cuda(), temperature=1.0, generator=_g(1))
    assert out.device.type == "cuda" and torch.equal(out.cpu(), TR.sample_token(logits, temperature=1.0,
                                                                                  generator=_g(1)))


def test_decode_end_token_fills_the_rest_and_stops():
    calls = []

    def step(tokens, cache):  # a fixed next-token rule: row 0 ends at once, row 1 writes 3, 3, then 0
        calls.append(tokens.shape)
        L = tokens.shape[1] if cache is None else 0
        logits = torch.full((2, 1, 5), -10.0)
        logits[0, 0, 0] = 10.0
        logits[1, 0, 3 if L < 3 else 0] = 10.0
        return logits

    out = TR.decode(step, torch.zeros(2, 0, dtype=torch.long), 8, n_layer=1, temperature=0.0, use_cache=False,
                    end=0)
    assert out.tolist() == [[0] * 8, [3, 3, 0, 0, 0, 0, 0, 0]] and len(calls) == 3


# ---- cached == uncached ----------------------------------------------------------------------
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_cached_decoding_equals_uncached_for_all_three_models(temperature):
    gpt, cap, prior = _gpt(), _captioner(), _perturbed(UC.ARPrior(PRIOR))
    prefix = torch.randint(0, 11, (4, 3), generator=_g(1))
    x = torch.randn(6, 3, 8, 8, generator=_g(2))
    tok, zt = TK.encode(["a red circle", "a blue square", "a green circle"]), torch.randn(3, 8, generator=_g(3))
    runs = {}
    for use_cache in (True, False):
        runs[use_cache] = (
            gpt.generate(prefix, 20, temperature=temperature, generator=_g(7), use_cache=use_cache),
            gpt.generate(prefix[:, :0], 12, temperature=temperature, top_k=5, generator=_g(8), use_cache=use_cache),
            cap.generate(x, temperature=temperature, generator=_g(9), use_cache=use_cache),
            prior.generate(tok, zt, temperature=max(temperature, 1.0), generator=_g(10), use_cache=use_cache),
            prior.generate(tok, zt, first=torch.tensor([1, 2, 3]), temperature=max(temperature, 1.0),
                           generator=_g(11), use_cache=use_cache))
    for a, b in zip(runs[True], runs[False]):
        assert torch.equal(a, b)


def test_cached_forward_logits_match_the_full_forward():
    """Every model's cached forward, fed one token at a time, gives the logits of its full forward."""
    gpt, cap, prior = _gpt(), _captioner(grid=True), _perturbed(UC.ARPrior(PRIOR))
    idx = torch.randint(0, 9, (2, 10), generator=_g(0))
    x = torch.randn(2, 3, 8, 8, generator=_g(1))
    tok, zt = TK.encode(["a red circle", "a blue square"]), torch.randn(2, 8, generator=_g(2))
    codes = idx[:, :prior.length] % PRIOR.buckets
    for full, fwd, seq, n_layer in ((gpt(idx), lambda t, c: gpt(t, cache=c), idx, 3),
                                    (cap(x, idx), lambda t, c: cap(x, t, cache=c), idx, 2),
                                    (prior(codes, tok, zt), lambda t, c: prior(t, tok, zt, cache=c), codes, 2)):
        cache = TR.KVCache(n_layer)
        steps = [fwd(seq[:, :0], cache)]  # the conditioning (sos, image, caption) alone predicts token 0
        steps += [fwd(seq[:, i:i + 1], cache) for i in range(seq.shape[1] - 1)]
        assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)


# ---- the same tokens as before ---------------------------------------------------------------
def test_gpt_generate_gives_the_tokens_of_its_earlier_implementation():
    gpt = _gpt()
    prefix = torch.randint(0, 11, (5, 4), generator=_g(0))
    for kw in (dict(), dict(temperature=0.8, top_k=6), dict(vocab_range=(3, 9)), dict(use_cache=False)):
        for p in (prefix, prefix[:, :0]):
            new = gpt.generate(p, 20, generator=_g(1), **kw)
            assert torch.equal(new, _old_gpt_generate(gpt, p, 20, generator=_g(1), **kw)), kw
    # the generator is left in the same state: the same number of draws
    g_new, g_old = _g(2), _g(2)
    gpt.generate(prefix, 20, generator=g_new), _old_gpt_generate(gpt, prefix, 20, generator=g_old)
    assert torch.equal(g_new.get_state(), g_old.get_state())


@pytest.mark.parametrize("grid", [False, True])
def test_captioner_generate_gives_the_captions_of_its_earlier_implementation(grid):
    cap = _captioner(grid)
    x = torch.randn(16, 3, 8, 8, generator=_g(0))
    greedy = cap.generate(x)
    assert torch.equal(greedy, _old_caption(cap, x))
    assert (greedy == 0).any(1).any() and (greedy != 0).all(1).any()  # some captions end, some run to the end
    g_new, g_old = _g(1), _g(1)
    assert torch.equal(cap.generate(x, temperature=0.9, generator=g_new), _old_caption(cap, x, 0.9, g_old))
    assert torch.equal(g_new.get_state(), g_old.get_state())


def test_ar_prior_generate_gives_the_codes_of_its_earlier_implementation():
    prior = _perturbed(UC.ARPrior(PRIOR))
    tok = TK.encode(["a red circle", "a blue square", "a green circle", "a small red square"])
    zt = torch.randn(4, 8, generator=_g(0))
    first = torch.tensor([6, 0, 3, 5])
    for kw in (dict(), dict(first=first), dict(temperature=0.7, first=first)):
        g_new, g_old = _g(1), _g(1)
        new = prior.generate(tok, zt, generator=g_new, **kw)
        assert torch.equal(new, _old_prior_codes(prior, tok, zt, generator=g_old, **kw)), kw
        assert torch.equal(g_new.get_state(), g_old.get_state())
