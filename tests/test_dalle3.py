"""Chapter 08's pieces (ddpm_lib.captions.stated / strip_junk, chapters.dalle3): prompts of every caption form
parsed to what they state, samples scored against their own prompt (with an exact fake reader), the
captioner's report card, the presets (the claims: test_claims_dalle3.py)."""
from __future__ import annotations

import ddpm_lib  # noqa: F401  (before torch)

import math

import numpy as np
import pytest
import torch

from ddpm_lib import captions as CP, data as DS, profiles
from ddpm_lib.chapters import dalle3 as CH
from ddpm_lib.data import shapes

SCENES = DS.load("shapes", n=40, image_size=16, objects=2, seed=3)


class ExactReader:
    """Reads scene i from an image whose first pixel holds i: what the renderer drew, exactly."""

    def __init__(self, attrs):
        self.attrs = {k: torch.as_tensor(v) for k, v in attrs.items()}

    def read(self, images):
        idx = images[:, 0, 0, 0].round().long()
        n = len(idx)
        out = {"occupied": torch.zeros(n, 9, dtype=torch.bool), "background": self.attrs["background"][idx]}
        for f in ("shape", "colour", "size"):
            out[f] = torch.full((n, 9), -1, dtype=torch.long)
        rows = torch.arange(n)
        for s in ("", "2"):
            cell = self.attrs["position" + s][idx]
            out["occupied"][rows, cell] = True
            for f in ("shape", "colour", "size"):
                out[f][rows, cell] = self.attrs[f + s][idx]
        return out


def _images(idx):
    x = torch.zeros(len(idx), 3, 16, 16)
    x[:, 0, 0, 0] = torch.as_tensor(idx, dtype=torch.float32)
    return x


def test_stated_reads_every_caption_form_and_ignores_filler():
    for short, long in zip(SCENES.captions, SCENES.captions_long):
        st, lt = CP.stated(short), CP.stated(long)
        assert set(st) == {"shape", "colour", "shape2", "colour2"}
        assert shapes.captions_of({k: torch.tensor([v]) for k, v in lt.items()})[1] == [long]
    # alt-text without losses is the short caption; with filler the filler is ignored
    clean = CP.alt_text(SCENES.attrs, seed=0, p_second=0, p_colour=0, p_wrong=0, p_junk=0)
    assert clean == SCENES.captions
    junk = CP.alt_text(SCENES.attrs, seed=0, p_second=0, p_colour=0, p_wrong=0, p_junk=1)
    assert CP.strip_junk(junk) == SCENES.captions
    assert [CP.stated(j) for j in junk] == [CP.stated(c) for c in SCENES.captions]
    # partial objects: each keeps what it says; phrases without a shape say nothing
    assert CP.stated("stock photo of a circle and a large red square at the top left hd") == {
        "shape": 0, "shape2": 1, "colour2": 0, "size2": 1, "position2": 0}
    assert CP.stated("a red and a blue on a gray background") == {"background": 3}
    assert CP.stated("") == {}


def test_match_stated_scores_what_each_prompt_says_and_binding_only_for_two_coloured_objects():
    reader = ExactReader(SCENES.attrs)
    n = len(SCENES.captions)
    x = _images(range(n))
    own = CH.match_stated(reader, x, SCENES.captions_long)
    assert np.allclose(own["score"], 1) and np.allclose(own["bound"], 1) and np.allclose(own["swap"], 0)
    for f in CH.FIELDS:
        assert np.allclose(own[f], 1)
    other = CH.match_stated(reader, x, list(np.roll(np.array(SCENES.captions_long, dtype=object), 1)))
    assert other["score"].mean() < 0.6
    # mixed forms in one call: alt-text (some with one object), short, and a prompt that states nothing
    alt = CP.alt_text(SCENES.attrs, seed=1, p_second=0.5, p_colour=0.3, p_wrong=0.0, p_junk=0.5)
    mixed = alt[:20] + SCENES.captions[20:39] + ["a and a"]
    m = CH.match_stated(reader, x, mixed)
    assert np.allclose(m["score"][:39], 1) and math.isnan(m["score"][39])
    one = [i for i in range(20) if "shape2" not in CP.stated(alt[i])]
    assert one and all(math.isnan(m["bound"][i]) and math.isnan(m["size"][i]) for i in one)
    assert np.allclose(m["bound"][20:39], 1)
    # a wrong colour in the prompt is scored as asked: the image does not have it
    wrong = CP.alt_text(SCENES.attrs, seed=2, p_second=0, p_colour=0, p_wrong=1, p_junk=0)
    w = CH.match_stated(reader, x, wrong)
    # (a wrong colour can be the other object's, read there when both shapes are the same)
    assert w["colour"].mean() < 0.05 and np.allclose(w["shape"], 1) and w["bound"].mean() < 0.05
    # swapping the two objects' colours is a binding error, not a missing colour
    sw = {k: v.clone() for k, v in SCENES.attrs.items()}
    sw["colour"], sw["colour2"] = SCENES.attrs["colour2"].clone(), SCENES.attrs["colour"].clone()
    differ = (sw["colour"] != sw["colour2"]) & (SCENES.attrs["shape"] != SCENES.attrs["shape2"])
    s = CH.match_stated(reader, x, shapes.captions_of(sw)[0])
    assert differ.any() and np.allclose(s["swap"][differ.numpy()], 1) and np.allclose(s["bound"][differ.numpy()], 0)
    with pytest.raises(ValueError, match="images for"):
        CH.match_stated(reader, x[:3], SCENES.captions)


def test_caption_accuracy_matches_objects_in_either_order_and_counts_omissions_as_wrong():
    attrs = SCENES.attrs
    full = CH.caption_accuracy(SCENES.captions_long, attrs)
    assert all(v == 1 for v in full.values())
    flipped = {k: v for k, v in attrs.items()}
    for f in ("shape", "colour", "size", "position"):
        flipped[f], flipped[f + "2"] = attrs[f + "2"], attrs[f]
    assert CH.caption_accuracy(shapes.captions_of(flipped)[1], attrs) == full
    short = CH.caption_accuracy(SCENES.captions, attrs)
    assert short["shape"] == short["colour"] == 1 and short["size"] == short["position"] == short["background"] == 0
    assert short["exact"] == 0
    info = CH.information(CP.alt_text(attrs, seed=0, p_second=1, p_colour=0, p_wrong=0, p_junk=0), attrs)
    assert info["shape"]["stated"] == 0.5 and info["colour"]["wrong"] == 0 and info["position"]["stated"] == 0


def test_presets_check_the_blends():
    assert 0.95 in profiles.get("08_dalle3", "cpu").blends
    with pytest.raises(ValueError, match="include 0.95"):
        profiles.get("08_dalle3", "smoke", blends=(0.65, 0.8))
    with pytest.raises(ValueError, match="needs 0.95 and a lower or higher share"):
        profiles.get("08_dalle3", "smoke", blends=(0.95,))
    with pytest.raises(ValueError, match="p_colour \\+ p_wrong"):
        profiles.get("08_dalle3", "smoke", p_colour=0.6, p_wrong=0.6)


def test_off_palette_is_zero_on_training_scenes_and_large_off_the_palette():
    d = CH.off_palette(SCENES.x)
    assert d.shape == (len(SCENES),)
    assert np.median(d) < 0.02  # an object may cover part of the ring, not half of it
    purple = torch.tensor([0.5, 0.1, 0.6])[None, :, None, None] * 2 - 1
    far = CH.off_palette(purple.expand(3, 3, 16, 16).clone())
    # nearest training background: gray (0.45, 0.45, 0.45)
    want = math.sqrt(((0.5 - 0.45) ** 2 + (0.1 - 0.45) ** 2 + (0.6 - 0.45) ** 2) / 3)
    assert want == pytest.approx(min(math.dist((0.5, 0.1, 0.6), c) / math.sqrt(3) for c in shapes.BACKGROUNDS.values()))
    assert np.allclose(far, want, atol=1e-6)
