"""Networks: shapes for every conditioning mode, the DDPM parameter count, KV-cache sampling."""
import pytest
import torch
import torch.nn as nn

from ddpm_lib import cache, nets
from ddpm_lib.nets import transformer as TR
from ddpm_lib.nets import unet as U


def test_ddpm_cifar10_has_35_7M_parameters():
    n = nets.count_params(U.UNet(U.PRESETS["ddpm_cifar10"]))
    assert abs(n - 35.7e6) / 35.7e6 < 0.01, n


def _tiny(**kw):
    base = dict(image_size=8, in_channels=3, out_channels=3, base_channels=16, channel_mult=(1, 2),
                num_res_blocks=1, attention_resolutions=(4,), num_heads=2, dropout=0.0, groups=4)
    base.update(kw)
    return U.UNetConfig(**base)


CONDITIONING = {
    "unconditional": (dict(), dict()),
    "learned variance": (dict(out_channels=6), dict()),
    "class": (dict(num_classes=5), dict(y=torch.tensor([0, 4, -1]))),
    "text tokens": (dict(context_dim=12), dict(context=torch.randn(3, 7, 12),
                                               context_mask=torch.tensor([[1] * 7, [1] * 3 + [0] * 4, [1] + [0] * 6]).bool())),
    "global embedding": (dict(embed_dim=10), dict(embed=torch.randn(3, 10))),
    "ADM knobs": (dict(resblock_updown=True, scale_shift_norm=True, head_channels=8, attention_resolutions=(8, 4)), dict()),
    "everything": (dict(num_classes=3, context_dim=4, embed_dim=5, resblock_updown=True, scale_shift_norm=True,
                        out_channels=6), dict(y=torch.tensor([0, 1, 2]), context=torch.randn(3, 2, 4), embed=torch.randn(3, 5))),
}


@pytest.mark.parametrize("mode", list(CONDITIONING))
def test_unet_shapes_for_every_conditioning_mode(mode):
    cfg_kw, cond = CONDITIONING[mode]
    cfg = _tiny(**cfg_kw)
    net = U.UNet(cfg)
    x = torch.randn(3, 3, 8, 8)
    out = net(x, torch.tensor([0.0, 10.0, 999.0]), **cond)
    assert out.shape == (3, cfg.out_channels, 8, 8)
    assert out.abs().max() == 0  # zero-initialised output layer (DDPM/ADM)
    # after perturbing the weights the conditioning inputs change the output
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    out = net(x, torch.tensor([0.0, 10.0, 999.0]), **cond)
    assert torch.isfinite(out).all()
    for key, val in cond.items():
        if key == "context_mask":
            continue
        other = dict(cond)
        other[key] = torch.flip(val, [0]) if key == "y" else val + 1.0
        assert not torch.allclose(net(x, torch.tensor([0.0, 10.0, 999.0]), **other), out), key


def test_masked_text_tokens_are_ignored():
    net = U.UNet(_tiny(context_dim=6))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([5.0, 5.0])
    ctx = torch.randn(2, 4, 6)
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]]).bool()
    ctx2 = ctx.clone()
    ctx2[0, 2:] += 3.0
    ctx2[1, 1:] -= 2.0
    assert torch.allclose(net(x, t, context=ctx, context_mask=mask), net(x, t, context=ctx2, context_mask=mask), atol=1e-6)


def test_unet_rejects_bad_configs():
    with pytest.raises(ValueError, match="divisible"):
        U.UNetConfig(image_size=10, channel_mult=(1, 2, 2))
    with pytest.raises(ValueError, match="small16"):
        U.preset("huge")


def test_as_model_casts_and_cost_counts_flops():
    lin = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    c = nets.cost(lin, torch.randn(4, 3, 2, 2))
    assert c["params"] == 12 * 5 + 5 and c["flops_per_example"] == 2 * 12 * 5 and c["macs_per_example"] == 60
    net = U.UNet(_tiny())
    model = nets.as_model(net)
    out = model(torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.tensor([1, 2]))
    assert out.dtype == torch.float32
    assert nets.memory_format(net) == torch.contiguous_format


def test_as_model_feeds_a_channels_last_net_in_its_format_with_the_same_output():
    torch.manual_seed(0)
    net = U.UNet(_tiny()).eval()
    x, t = torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.tensor([1, 2])
    ref = nets.as_model(net)(x, t)
    seen = []
    net.register_forward_pre_hook(lambda m, args: seen.append(args[0].is_contiguous()))
    net = net.to(memory_format=torch.channels_last)
    assert nets.memory_format(net) == torch.channels_last
    out = nets.as_model(net)(x, t)
    assert seen == [False]  # the input reached the network channels-last
    torch.testing.assert_close(out.contiguous(), ref, rtol=1e-4, atol=1e-5)


def _gpt(**kw):
    base = dict(vocab_size=11, block_size=20, n_layer=3, n_head=2, n_embd=32, norm="rms", activation="gelu2")
    base.update(kw)
    return TR.GPT(TR.GPTConfig(**base)).eval()


def test_gpt_logits_are_causal_and_aligned():
    torch.manual_seed(0)
    gpt = _gpt()
    idx = torch.randint(0, 11, (2, 20))
    logits, hidden = gpt(idx, return_hidden=True)
    assert logits.shape == (2, 20, 11) and len(hidden) == 3 and hidden[1].shape == (2, 20, 32)
    idx2 = idx.clone()
    idx2[:, 9] = (idx2[:, 9] + 1) % 11
    logits2 = gpt(idx2)
    # logits[:, i] predicts idx[:, i] from idx[:, <i]: positions <= 9 are unchanged, 10 changes
    assert torch.allclose(logits[:, :10], logits2[:, :10], atol=1e-6)
    assert not torch.allclose(logits[:, 10], logits2[:, 10])


def test_bidirectional_model_sees_both_sides():
    gpt = _gpt(causal=False, sos=False)
    idx = torch.randint(0, 11, (1, 12))
    idx2 = idx.clone()
    idx2[0, 8] = (idx2[0, 8] + 1) % 11
    assert not torch.allclose(gpt(idx)[:, :8], gpt(idx2)[:, :8])


def test_kv_cache_sampling_equals_full_recomputation():
    """Same tokens with and without the cache (float64, so that no rounding lands on a
    multinomial boundary; the logits themselves are compared in float32 below)."""
    torch.manual_seed(1)
    gpt = _gpt().double()
    prefix = torch.randint(0, 11, (3, 5))
    runs = []
    for use_cache in (True, False):
        g = torch.Generator().manual_seed(42)
        runs.append(gpt.generate(prefix, 20, temperature=1.0, top_k=8, generator=g, use_cache=use_cache))
    assert torch.equal(runs[0], runs[1])
    assert torch.equal(runs[0][:, :5], prefix) and runs[0].shape == (3, 20)
    # from an empty prefix too
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    empty = prefix[:, :0]
    assert torch.equal(gpt.generate(empty, 20, generator=g1), gpt.generate(empty, 20, generator=g2, use_cache=False))


def test_generation_restricted_to_a_vocabulary_range():
    """DALL-E samples image codes after a text prefix from one shared vocabulary."""
    gpt = _gpt()
    prefix = torch.randint(0, 5, (4, 3))
    out = gpt.generate(prefix, 15, generator=torch.Generator().manual_seed(0), vocab_range=(7, 11))
    assert torch.equal(out[:, :3], prefix) and out[:, 3:].min() >= 7 and out[:, 3:].max() <= 10
    with pytest.raises(ValueError, match="vocab_range"):
        gpt.generate(prefix, 15, vocab_range=(5, 99))


def test_kv_cache_logits_match_full_forward():
    torch.manual_seed(2)
    gpt = _gpt()
    idx = torch.randint(0, 11, (2, 15))
    full = gpt(idx)
    cache = TR.KVCache(gpt.cfg.n_layer)
    x = gpt.sos.expand(2, 1, -1) + gpt.pos[:1]
    steps = []
    for i in range(15):
        h = x
        for block in gpt.blocks:
            h = block(h, cache)
        steps.append(gpt.head(gpt.ln_f(h[:, -1])))
        x = gpt.tok(idx[:, i:i + 1]) + gpt.pos[i + 1:i + 2]
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-5)


def test_cached_prefill_equals_uncached_forward():
    """Feeding several tokens at once into an empty cache is the ordinary causal forward."""
    torch.manual_seed(4)
    gpt = _gpt()
    x = gpt.embed(torch.randint(0, 11, (2, 9)), 0, with_sos=True)
    cache, h, h_ref = TR.KVCache(gpt.cfg.n_layer), x, x
    for block in gpt.blocks:
        h, h_ref = block(h, cache), block(h_ref, None)
    assert torch.allclose(h, h_ref, atol=1e-6) and cache.length(2) == 10


def test_gpt_config_validation():
    with pytest.raises(ValueError, match="rms"):
        TR.GPTConfig(norm="batch")
    with pytest.raises(ValueError, match="block_size"):
        _gpt()(torch.zeros(1, 30, dtype=torch.long))


# ---- continuous noise levels, float64 and forward-mode derivatives ----------------------------
def _perturbed(net, seed=0, scale=0.05):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return net


def test_new_unet_fields_leave_existing_configs_and_weights_unchanged():
    """time_scale, max_period, pixel_norm_modulation stay out of the cache key at their defaults: the
    presets keep the hashes and the seeded initial weights they had before the fields existed."""
    from ddpm_lib import cache

    assert cache.config_hash(U.PRESETS["tiny8"]) == "980f4a034230f4ab"
    assert cache.config_hash(U.PRESETS["ddpm_cifar10"]) == "9bac8b5b7d974ea4"
    assert cache.checksum(U.UNet(U.PRESETS["tiny8"]).state_dict()) == \
        "a3de92c7165c526cac149cff8f5f8ef591c226be2512b4c47dc87b8e483d6b68"
    for change in (dict(time_scale=2.0), dict(max_period=10.0), dict(scale_shift_norm=True, pixel_norm_modulation=True)):
        before = U.preset("tiny8", scale_shift_norm="scale_shift_norm" in change)
        assert cache.config_hash(U.preset("tiny8", **change)) != cache.config_hash(before)
    with pytest.raises(ValueError, match="scale_shift_norm"):
        U.preset("tiny8", pixel_norm_modulation=True)


def test_float32_time_embedding_is_bit_identical_to_the_original():
    import math

    def old(t, dim=64, max_period=10000.0):  # the formula before the embedding followed its input's dtype
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        args = t.float()[:, None] * freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    t = torch.tensor([0.0, 1.0, 17.5, 999.0])
    assert torch.equal(U.timestep_embedding(t, 64), old(t))
    steps = torch.tensor([0, 1, 17, 999])
    assert torch.equal(U.timestep_embedding(steps, 64), old(steps))
    assert U.timestep_embedding(t.double(), 64).dtype == torch.float64


def test_double_unet_runs_and_matches_float32():
    import copy

    net = _perturbed(U.UNet(_tiny(scale_shift_norm=True, num_classes=3)))
    net64 = copy.deepcopy(net).double()
    x, t, y = torch.randn(2, 3, 8, 8), torch.tensor([3.0, 700.0]), torch.tensor([0, 2])
    out32, out64 = net(x, t, y=y), net64(x.double(), t.double(), y=y)
    assert out64.dtype == torch.float64 and out32.abs().max() > 0.1
    assert (out64 - out32.double()).abs().max().item() < 1e-5
    assert torch.equal(net64(x.double(), t.long(), y=y), out64)  # integer steps too


def test_time_scale_and_max_period():
    base = U.UNet(_tiny())
    scaled = U.UNet(_tiny(time_scale=7.0))
    scaled.load_state_dict(_perturbed(base).state_dict())
    x, t = torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.tensor([0.3, 1.2], dtype=torch.float64)
    base, scaled = base.double(), scaled.double()
    torch.testing.assert_close(scaled(x, t), base(x, 7.0 * t), rtol=1e-12, atol=1e-12)
    short = U.UNet(_tiny(max_period=10.0)).double()
    short.load_state_dict(base.state_dict())
    assert (short(x, t) - base(x, t)).abs().max() > 1e-3


def test_pixel_norm_modulation_normalises_the_adagn_scale_and_shift():
    e = torch.randn(4, 6, 1, 1, dtype=torch.float64) * 5
    torch.testing.assert_close(U.pixel_norm(e).pow(2).mean(1), torch.ones(4, 1, 1, dtype=torch.float64))
    plain = _perturbed(U.UNet(_tiny(scale_shift_norm=True))).double()
    normed = U.UNet(_tiny(scale_shift_norm=True, pixel_norm_modulation=True)).double()
    normed.load_state_dict(plain.state_dict())
    block = normed.mid[0]
    h, emb = torch.randn(2, 32, 4, 4, dtype=torch.float64), torch.randn(2, 64, dtype=torch.float64)
    scale, shift = block.emb(torch.nn.functional.silu(emb))[:, :, None, None].chunk(2, dim=1)
    h1 = block.conv1(torch.nn.functional.silu(block.norm1(h)))
    expect = block.conv2(torch.nn.functional.silu(block.norm2(h1) * U.pixel_norm(1 + scale) + U.pixel_norm(shift))) + h
    torch.testing.assert_close(block(h, emb), expect)
    x, t = torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.tensor([5.0, 500.0], dtype=torch.float64)
    assert (normed(x, t) - plain(x, t)).abs().max() > 1e-3


def test_jvp_through_the_unet_matches_central_differences():
    """d/dx and d/dt of a float64 UNet with attention, AdaGN + PixelNorm and a max-period-10 embedding
    on TrigFlow-like t in [0, pi/2]: forward-mode AD agrees with a central difference to 1e-6."""
    cfg = _tiny(scale_shift_norm=True, pixel_norm_modulation=True, max_period=10.0)
    net = _perturbed(U.UNet(cfg), scale=0.2).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    t = torch.tensor([0.3, 1.2], dtype=torch.float64)
    dx = torch.randn(x.shape, generator=g, dtype=torch.float64)
    dt = torch.tensor([1.0, -0.5], dtype=torch.float64)
    out, tangent = U.jvp(net, (x, t), (dx, dt))
    h = 1e-5
    fd = (net(x + h * dx, t + h * dt) - net(x - h * dx, t - h * dt)) / (2 * h)
    assert torch.equal(out, net(x, t))
    rel = ((tangent - fd).norm() / fd.norm()).item()
    assert fd.norm() > 1e-2 and rel < 1e-6, rel
    # each input alone, and the derivative in t is not zero (t really reaches the network)
    _, tan_t = U.jvp(lambda tt: net(x, tt), (t,), (dt,))
    fd_t = (net(x, t + h * dt) - net(x, t - h * dt)) / (2 * h)
    assert fd_t.norm() > 1e-3 and ((tan_t - fd_t).norm() / fd_t.norm()).item() < 1e-6


def test_rescaled_residual_divides_the_block_sum_by_sqrt2():
    torch.manual_seed(0)
    plain = U.ResBlock(16, 16, 32, 0.0, 8)
    scaled = U.ResBlock(16, 16, 32, 0.0, 8, rescale=True)
    scaled.load_state_dict(plain.state_dict())
    with torch.no_grad():
        for p in (*plain.conv2.parameters(), *scaled.conv2.parameters()):
            p.normal_(0, 0.1)  # open the zero-initialised conv so both paths count
        scaled.conv2.load_state_dict(plain.conv2.state_dict())
    x, emb = torch.randn(2, 16, 8, 8), torch.randn(2, 32)
    assert torch.allclose(scaled(x, emb), plain(x, emb) / 2**0.5, atol=1e-6)
    assert cache.config_hash(U.preset("tiny8")) == cache.config_hash(U.preset("tiny8", rescale_skip=False))
    assert cache.config_hash(U.preset("tiny8")) != cache.config_hash(U.preset("tiny8", rescale_skip=True))


def test_super_resolution_unet_sees_the_upsampled_low_res_image():
    cfg = U.preset("tiny8", image_size=16, in_channels=6, out_channels=3, channel_mult=(1, 2), attention_resolutions=())
    net = U.SuperResUNet(cfg)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([5.0, 500.0])
    low = torch.randn(2, 3, 8, 8)
    out = net(x, t, low)
    assert out.shape == (2, 3, 16, 16)
    assert not torch.allclose(out, net(x, t, torch.zeros_like(low)))
    up = torch.nn.functional.interpolate(low, size=(16, 16), mode="bilinear", align_corners=False)
    assert torch.allclose(out, net.unet(torch.cat([x, up], 1), t))
    with pytest.raises(ValueError, match="in_channels"):
        U.SuperResUNet(U.preset("tiny8"))


def test_seeded_init_draws_another_initialisation_per_init_seed():
    cfg = _tiny()
    w = lambda net: torch.cat([p.flatten() for p in net.parameters()])  # noqa: E731
    base, one, again = U.UNet(cfg), U.UNet(cfg, init_seed=1), U.UNet(cfg, init_seed=1)
    assert torch.equal(w(one), w(again)) and not torch.equal(w(base), w(one))
    assert torch.equal(w(base), w(U.UNet(cfg, init_seed=0)))
