"""The prompt-following scorer (ddpm_lib.scorer): the reader's accuracy on held-out renders, the
caption match (own prompts vs other scenes' prompts, attribute binding), and the caption parser.

The reader is trained once per session (about 25 s on one thread) in a temporary weights cache."""
from __future__ import annotations

import pytest
import torch

from ddpm_lib import data
from ddpm_lib import scorer as S

N_TEST = 2000  # held-out scenes per object count: one standard error at 99.7% is 0.12 points


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DDPM_CACHE", str(tmp_path_factory.mktemp("cache")))
        r = S.reader(16, device="cpu", progress=False, threads=1)
        again = S.reader(16, device="cpu", progress=False, threads=1)
        yield r, again


@pytest.mark.parametrize("objects", [1, 2])
def test_reader_reads_every_attribute_of_held_out_renders(reader, objects):
    r, _ = reader
    test = data.load("shapes", "test", image_size=16, n=N_TEST, objects=objects)
    acc = r.accuracy(test)
    print(f"\n{objects} object(s), 16 px:", {k: round(v, 4) for k, v in acc.items()})
    assert set(acc) == set(test.attrs) | {"all"}
    # Every attribute reaches the 99% target at 16 px. Measured (recipe of RECIPES[16]): shape 99.8%
    # (1 and 2 objects; the errors are small circles vs small squares, 3 px across), colour, size,
    # position and background 100%.
    for k, v in acc.items():
        if k != "all":
            assert v >= 0.99, (k, v)
    assert acc["all"] >= 0.98


def test_reader_is_cached_and_frozen(reader):
    r, again = reader
    assert r.trained_now and not again.trained_now  # the second call loaded the cached weights
    assert not any(p.requires_grad for p in again.net.parameters())
    x = data.load("shapes", "test", image_size=16, n=200, objects=2).x
    a, b = r.read(x), again.read(x)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_reading_is_order_free(reader):
    """The same scene drawn in either order reads the same: the reader reads cells, not objects."""
    r, _ = reader
    attrs = data.load("shapes", "test", image_size=16, n=300, objects=2).attrs
    swapped = dict(attrs)
    for a in data.OBJECT_ATTRIBUTES:
        swapped[a], swapped[a + "2"] = attrs[a + "2"], attrs[a]
    first, second = r.read(data.render_scenes(attrs, 16)), r.read(data.render_scenes(swapped, 16))
    same = torch.stack([(first[k] == second[k]).reshape(len(first[k]), -1).all(1) for k in first]).all(0)
    assert same.double().mean() >= 0.98  # only overlapping large objects may differ
    assert r.accuracy(data.Data("canonical", data.render_scenes(swapped, 16), attrs=swapped))["all"] >= 0.98


def test_caption_match_own_prompts_score_one_and_others_low(reader):
    r, _ = reader
    test = data.load("shapes", "test", image_size=16, n=500, objects=2)
    for captions, other_at_most in ((test.captions, 0.45), (test.captions_long, 0.2)):
        own = S.caption_match(r, test.x, captions)  # a list of captions is parsed
        other = S.caption_match(r, test.x, {k: v.roll(1) for k, v in S.parse_captions(captions).items()})
        # measured: own 0.999 (short and long); other 0.32 (short: shapes often coincide) and 0.11 (long)
        assert own.score.mean() >= 0.99 and (own.score == 1).double().mean() >= 0.97
        assert other.score.mean() <= other_at_most
        assert set(own.fields) == ({"shape", "colour"} if captions is test.captions else set(S.FIELDS))
    one = data.load("shapes", "test", image_size=16, n=500, objects=1)
    assert S.caption_match(r, one.x, one.attrs).score.mean() >= 0.99


def test_swapped_colours_fail_binding(reader):
    """"a red circle and a blue square" drawn as a blue circle and a red square: shapes right,
    colours wrong when bound to their objects, yet every colour is present when unbound."""
    r, _ = reader
    attrs = data.load("shapes", "test", image_size=16, n=400, objects=2).attrs
    keep = (attrs["shape"] != attrs["shape2"]) & (attrs["colour"] != attrs["colour2"])
    attrs = {k: v[keep] for k, v in attrs.items()}
    swapped = dict(attrs, colour=attrs["colour2"], colour2=attrs["colour"])
    right, wrong = data.render_scenes(attrs, 16), data.render_scenes(swapped, 16)
    prompt = {k: attrs[k] for k in ("shape", "colour", "shape2", "colour2")}  # a short caption
    good, bad = S.caption_match(r, right, prompt), S.caption_match(r, wrong, prompt)
    assert good.score.mean() >= 0.98 and bad.score.mean() <= 0.55
    assert bad.fields["shape"].mean() >= 0.98 and bad.fields["colour"].mean() <= 0.03
    assert (bad.score < good.score).double().mean() >= 0.97
    assert S.caption_match(r, wrong, prompt, binding=False).score.mean() >= 0.98


class _Fixed:
    """A stand-in reader that reads given cells: caption_match's logic without a network."""

    def __init__(self, objects: list[tuple[int, int, int, int]], background: int = 0):
        self.reading = {k: torch.full((1, S.CELLS), -1) for k in ("shape", "colour", "size")}
        self.reading["occupied"] = torch.zeros(1, S.CELLS, dtype=torch.bool)
        self.reading["background"] = torch.tensor([background])
        for cell, shape, colour, size in objects:
            self.reading["occupied"][0, cell] = True
            for k, v in (("shape", shape), ("colour", colour), ("size", size)):
                self.reading[k][0, cell] = v

    def read(self, images):
        return self.reading


def _idx(attr: str, name: str) -> int:
    return data.ATTRIBUTES[attr].index(name)


def test_caption_match_assignment_rules():
    image = torch.zeros(1, 3, 16, 16)
    circle, square, red, blue = _idx("shape", "circle"), _idx("shape", "square"), _idx("colour", "red"), _idx("colour", "blue")
    small, top_left, center = _idx("size", "small"), _idx("position", "top left"), _idx("position", "center")
    short = S.parse_captions(["a red circle and a blue square"])
    # the picture holds a blue circle (top left) and a red square (center)
    swapped = _Fixed([(top_left, circle, blue, small), (center, square, red, small)])
    m = S.caption_match(swapped, image, short)
    assert m.score.item() == 0.5 and m.fields["shape"].item() == 1 and m.fields["colour"].item() == 0
    assert S.caption_match(swapped, image, short, binding=False).score.item() == 1
    # one object missing: the other still counts, the missing one's attributes do not
    half = _Fixed([(center, circle, red, small)])
    assert S.caption_match(half, image, short).score.item() == 0.5
    assert S.caption_match(half, image, short, fields=("shape", "colour", "count")).fields["count"].item() == 0
    # descriptive prompt: matched by cell. The circle is asked at the center but drawn top left, the
    # square the other way round: both cells hold an object of the right size, of the wrong shape and colour
    long = S.parse_captions(["a small blue circle at the center and a small red square at the top left "
                             "on a black background"])
    m = S.caption_match(swapped, image, long)
    assert m.fields["position"].item() == 1 and m.fields["size"].item() == 1 and m.fields["background"].item() == 1
    assert m.fields["shape"].item() == 0 and m.fields["colour"].item() == 0
    assert m.score.item() == pytest.approx(5 / 9)
    best = S.caption_match(swapped, image, long, assign="best")  # match by shape, then score positions
    assert best.fields["shape"].item() == 1 and best.fields["colour"].item() == 1 and best.fields["position"].item() == 0
    assert best.score.item() == pytest.approx(7 / 9)
    with pytest.raises(ValueError, match="fields"):
        S.caption_match(swapped, image, short, fields=("texture",))
    with pytest.raises(ValueError, match="positions"):
        S.caption_match(swapped, image, short, assign="cell")


@pytest.mark.parametrize("objects", [1, 2])
def test_captions_parse_back_to_their_attributes(objects):
    d = data.load("shapes", "test", image_size=8, n=1000, objects=objects)
    short, long = S.parse_captions(d.captions), S.parse_captions(d.captions_long)
    assert set(long) == set(d.attrs) and all(torch.equal(long[k], d.attrs[k]) for k in d.attrs)
    assert set(short) == {k for k in d.attrs if k.rstrip("2") in ("shape", "colour")}
    assert all(torch.equal(short[k], d.attrs[k]) for k in short)
    assert data.captions_of(long) == (d.captions, d.captions_long)  # round trip through the attributes
    with pytest.raises(ValueError, match="grammar"):
        S.parse_caption("a red circle at the middle")
    with pytest.raises(ValueError, match="forms"):
        S.parse_captions([d.captions[0], d.captions_long[0]])


def test_cell_targets_and_network_shapes():
    d = data.load("shapes", "test", image_size=8, n=50, objects=2)
    y = S.cell_targets(d.attrs)
    rows = torch.arange(50)
    assert y.shape == (50, 3 * S.CELLS + 1) and ((y[:, :S.CELLS] > 0).sum(1) == 2).all()
    assert torch.equal(y[rows, d.attrs["position2"]], d.attrs["shape2"] + 1)
    assert torch.equal(y[rows, S.CELLS + d.attrs["position"]], d.attrs["colour"])
    assert ((y[:, S.CELLS:3 * S.CELLS] == -1).sum(1) == 2 * (S.CELLS - 2)).all()
    for size in (16, 32):
        cfg = S.ReaderConfig(image_size=size)
        net, twin = S.ReaderNet(cfg), S.ReaderNet(cfg)
        assert all(torch.equal(p, q) for p, q in zip(net.parameters(), twin.parameters()))  # seeded by cfg
        out = net(torch.zeros(2, 3, size, size))
        assert out["shape"].shape == (2, 9, 4) and out["colour"].shape == (2, 9, 8)
        assert out["size"].shape == (2, 9, 2) and out["background"].shape == (2, 4)
    with pytest.raises(ValueError, match="read_size"):
        S.ReaderConfig(image_size=24)


def test_judges_table_rows():
    rows = S.judges_table({"judge CLIP": 0.42, "guide": 0.31},
                          {"shape": 0.99, "colour": 1.0, "shape2": 0.5, "all": 0.875})
    assert [r["model"] for r in rows] == ["judge CLIP", "guide", "reader (per attribute)"]
    assert rows[0][S.RETRIEVAL] == "42%" and rows[1][S.RETRIEVAL] == "31%"
    # the second object's attributes are left out; 'all' stays
    assert rows[2][S.RETRIEVAL] == "shape 99%, colour 100%, all 88%"
