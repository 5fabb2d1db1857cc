"""The text stack: tokenizers, the caption encoder, the text-conditional UNet and what it costs."""
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from ddpm_lib import data, text
from ddpm_lib.nets import text_encoder as TE
from ddpm_lib.nets import unet as U

ROOT = Path(__file__).resolve().parents[1]


def test_shapes_tokenizer_covers_every_caption_and_round_trips():
    tk = text.shapes_tokenizer()
    for objects in (1, 2):
        d = data.load("shapes", n=2000, image_size=16, objects=objects)
        for caps in (d.captions, d.captions_long):
            tok = tk.encode(caps)
            assert (tok == 1).sum() == 0  # no unknown word
            assert tk.decode(tok) == [" ".join(text.words(c)) for c in caps]
    assert tk.vocab_size == len(tk.vocab) + 2 and tk.encode(["a red circle"]).shape == (1, tk.context)
    assert torch.equal(tk.empty(3), tk.encode(["", "", ""]))
    with pytest.raises(ValueError, match="context"):
        text.WordTokenizer(("a",), context=2).encode(["a a a"])
    assert text.WordTokenizer.from_texts(["a b", "b c d"]).context == 3


def test_caption_key_ignores_the_order_of_the_objects():
    assert text.caption_key("a red circle and a blue square") == text.caption_key("a blue square and a red circle")
    assert text.caption_key("a red circle and a blue square") != text.caption_key("a blue circle and a red square")
    a = "a small red circle at the top and a large blue square at the left on a gray background"
    b = "a large blue square at the left and a small red circle at the top on a gray background"
    assert text.caption_key(a) == text.caption_key(b) != text.caption_key(a.replace("gray", "black"))


@pytest.mark.skipif(importlib.util.find_spec("tokenizers") is None, reason="needs the text extra")
def test_trained_bpe_round_trips_unseen_captions(tmp_path):
    d = data.load("shapes", n=1500, image_size=16, objects=2)
    bpe = text.train_bpe(d.captions_long, vocab_size=400, context=40)
    with pytest.raises(ValueError, match="merges"):
        text.train_bpe(d.captions_long, vocab_size=200)
    held = data.load("shapes", split="test", n=200, image_size=16, objects=2).captions_long
    tok = bpe.encode(held)
    assert bpe.decode(tok) == held
    lengths = bpe.mask(tok).sum(1).float()
    assert lengths.mean() < 0.75 * sum(len(c) for c in held) / len(held)  # it merged: fewer tokens than bytes
    bpe.save(tmp_path / "bpe.json")
    assert torch.equal(text.BPETokenizer.load(tmp_path / "bpe.json", 40).encode(held), tok)


def test_text_encoder_states_pooled_and_padding():
    tk = text.shapes_tokenizer()
    enc = TE.TextEncoder(TE.TextEncoderConfig(vocab_size=tk.vocab_size, context=tk.context))
    tok = tk.encode(["a red circle", "a red circle and a blue square", ""])
    states, pooled = enc(tok)
    assert states.shape == (3, tk.context, 64) and pooled.shape == (3, 64)
    assert torch.equal(pooled, states[:, -1])
    # the empty caption is an input of its own (learned padding), and words matter
    assert not torch.allclose(pooled[0], pooled[2]) and not torch.allclose(pooled[0], pooled[1])
    # bidirectional: a later word changes an earlier token's state
    s2, _ = enc(tk.encode(["a red square"]))
    assert not torch.allclose(states[0, 1], s2[0, 1])
    with pytest.raises(ValueError, match="context"):
        enc(torch.zeros(1, tk.context + 1, dtype=torch.long))


def test_text_unet_routes_and_empty_caption():
    tk = text.shapes_tokenizer()
    cfg = TE.TextUNetConfig.of(U.preset("tiny8", in_channels=3, out_channels=3),
                               TE.TextEncoderConfig(vocab_size=tk.vocab_size, context=tk.context, width=32))
    net = TE.TextUNet(cfg)
    with torch.no_grad():
        for p in net.unet.parameters():  # zero-initialised layers hide the conditioning at init: open them
            p.add_(torch.randn_like(p) * 0.05)
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([10.0, 500.0])
    a = net(x, t, tk.encode(["a red circle", "a blue square"]))
    assert torch.allclose(net(x, t), net(x, t, tk.empty(2)))
    assert not torch.allclose(a, net(x, t))
    assert not torch.allclose(a[0], net(x, t, tk.encode(["a green circle", "a blue square"]))[0])
    with pytest.raises(ValueError, match="text width"):
        TE.TextUNetConfig(U.preset("tiny8"), TE.TextEncoderConfig())


def test_text_conditioned_step_costs_at_most_1_3x_the_unconditional_one():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import text_conditioning as bench
    finally:
        sys.path.pop(0)
    r = bench.measure(batch=64, reps=5)
    print(r)
    assert r["ratio"] <= 1.3, r
