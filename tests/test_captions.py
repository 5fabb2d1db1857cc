"""DALL-E 3's caption sources (ddpm_lib.captions) and the captioner (ddpm_lib.nets.captioner): the alt-text
generator loses what it says it loses, prompt upsampling keeps what the prompt said, the blend picks per
example, and the captioner is causal, ends captions with padding, and can learn."""
from __future__ import annotations

import ddpm_lib  # noqa: F401  (before torch)

import pytest
import torch

from ddpm_lib import captions as CP, data as DS, objectives as OBJ, scorer
from ddpm_lib.data import shapes
from ddpm_lib.nets import captioner as NC
from ddpm_lib.objectives import conditioning

SCENES = DS.load("shapes", n=2000, image_size=16, objects=2, seed=0)


def test_alt_text_is_lossy_as_documented_and_in_the_vocabulary():
    alts = CP.alt_text(SCENES.attrs, seed=0, p_second=0.5, p_colour=0.3, p_wrong=0.1, p_junk=0.3)
    assert alts == CP.alt_text(SCENES.attrs, seed=0, p_second=0.5, p_colour=0.3, p_wrong=0.1, p_junk=0.3)
    assert alts != CP.alt_text(SCENES.attrs, seed=1)
    tk = CP.tokenizer()
    assert (tk.encode(alts) != 1).all()  # no unknown words
    both = sum(" and " in a for a in alts) / len(alts)
    assert 0.45 < both < 0.55  # the second object is named half the time
    first_colour = [shapes.ATTRIBUTES["colour"][int(c)] for c in SCENES.attrs["colour"]]
    first_shape = [shapes.ATTRIBUTES["shape"][int(s)] for s in SCENES.attrs["shape"]]
    said = [a.split(" and ")[0] for a in alts]
    right = sum(f"{c} {s}" in p for p, c, s in zip(said, first_colour, first_shape)) / len(alts)
    assert 0.55 < right < 0.65  # 1 - p_colour - p_wrong of the colours are said and right
    assert all(w not in a for a in alts for w in ("small", "large", "background", "at the"))  # never said
    junk = sum(any(j in a for j in CP.JUNK) for a in alts) / len(alts)
    assert 0.25 < junk < 0.35
    clean = CP.alt_text(SCENES.attrs, p_second=0.0, p_colour=0.0, p_wrong=0.0, p_junk=0.0)
    assert clean == SCENES.captions  # nothing lost: the short captions
    with pytest.raises(ValueError, match="p_colour \\+ p_wrong"):
        CP.alt_text(SCENES.attrs, p_colour=0.8, p_wrong=0.3)


def test_prompt_upsampling_keeps_the_prompt_and_fills_the_rest():
    long = CP.upsample_prompt(SCENES.captions[:200], seed=0)
    parsed, short = scorer.parse_captions(long), scorer.parse_captions(SCENES.captions[:200])
    for k in ("shape", "colour", "shape2", "colour2"):
        assert torch.equal(parsed[k], short[k])
    assert (parsed["position"] != parsed["position2"]).all()
    assert len(set(parsed["background"].tolist())) == len(shapes.BACKGROUNDS)
    assert long == CP.upsample_prompt(SCENES.captions[:200], seed=0)


class _Batch:
    def __init__(self, extras, n, seed=0):
        self.extras, self.y, self.g = extras, None, torch.Generator().manual_seed(seed)
        self.n = n

    def rand(self, *shape):
        return torch.rand(self.n, *shape, generator=self.g)


def test_blend_picks_the_synthetic_caption_per_example_with_its_probability():
    tk = CP.tokenizer()
    syn, alt = tk.encode(SCENES.captions_long), tk.encode(CP.alt_text(SCENES.attrs))
    batch = _Batch({"tokens_synthetic": syn, "tokens_original": alt}, len(syn))
    for p, lo, hi in ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (0.8, 0.75, 0.85)):
        out = conditioning([CP.blend(p, p_drop=0.0)], batch)["tokens"]
        is_syn = (out == syn).all(1) & ~(out == alt).all(1)
        assert lo <= is_syn.double().mean() <= hi
        assert ((out == syn).all(1) | (out == alt).all(1)).all()  # each row is one source, whole
    dropped = conditioning([CP.blend(1.0, p_drop=0.2)], batch)["tokens"]
    assert 0.15 < (dropped == 0).all(1).double().mean() < 0.25  # then the empty caption, for guidance
    cfg = CP.blend(0.95).config()
    assert cfg["p_synthetic"] == 0.95 and cfg["original"] == "tokens_original"
    with pytest.raises(KeyError, match="tokens_original"):
        conditioning([CP.blend(0.5)], _Batch({"tokens_synthetic": syn}, len(syn)))
    with pytest.raises(ValueError, match="p_synthetic"):
        CP.blend(1.5)


@pytest.mark.parametrize("grid", [False, True])
def test_captioner_is_causal_ends_with_padding_and_learns(grid):
    tk = CP.tokenizer()
    x, tok = SCENES.x[:16], tk.encode(SCENES.captions[:16])
    cap = NC.Captioner(NC.CaptionerConfig(vocab_size=tk.vocab_size, context=tk.context, width=32, layers=2, grid=grid))
    # the image's tokens: the pooled embedding cut in 4, or one per cell of the tower's 8x8 map
    assert cap.prefix(x).shape == (16, 64 if grid else 4, 32)
    logits = cap(x, tok)
    assert logits.shape == (16, tk.context, tk.vocab_size)
    changed = tok.clone()
    changed[:, 5:] = 3
    assert torch.allclose(cap(x, changed)[:, :6], logits[:, :6], atol=1e-5)  # position i sees words < i only
    out = cap.generate(x[:4])
    for row in out:
        first_pad = (row == 0).nonzero()
        if len(first_pad):
            assert (row[first_pad[0, 0]:] == 0).all()
    obj = OBJ.CaptionObjective()

    class B:
        pass
    B.x, B.extras = x, {"tokens": tok}
    opt = torch.optim.Adam(cap.parameters(), lr=3e-3)
    first = float(obj(cap, B)[0].detach())
    for _ in range(40):
        loss = obj(cap, B)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first
    # generate computes the image prefix once; greedy decoding by full forward passes gives the same words
    cap.eval()
    fast = cap.generate(x[:4])
    slow = torch.zeros_like(fast)
    with torch.no_grad():
        for i in range(tk.context):
            slow[:, i] = cap(x[:4], slow[:, :i + 1])[:, i].argmax(-1)
    for f, s_ in zip(fast, slow):
        end = (s_ == 0).nonzero()
        n = int(end[0, 0]) + 1 if len(end) else tk.context
        assert torch.equal(f[:n], s_[:n]) and (f[n:] == 0).all()
