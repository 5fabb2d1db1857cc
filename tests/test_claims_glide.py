"""Chapter 06's claims (ddpm_lib.chapters.glide): each rule can fail, the comparisons are paired
over the same captions, noise and images, conjunctions take their weakest part, the gates never
pre-empt the metric a row is about, and CLIP guidance is taken at Table 1's pre-registered lambda."""
from __future__ import annotations

import json

from conftest import ROOT
from ddpm_lib import claims as C
from ddpm_lib import stats
from ddpm_lib.chapters import glide as CH

import numpy as np  # noqa: E402
import pytest  # noqa: E402

N = 200
CFG, CLIP2, CLIP5, CLIP20 = ("cfg", 3.0), ("clip", 2.0), ("clip", 5.0), ("clip", 20.0)
KEYS = [CH.EMPTY, CH.S1, CFG, CLIP2, CLIP5, CLIP20]


def _rec(match=None, fd=None, guide_plus=None, judge_plus=None, seam=(0.02, 0.03, 0.03), hole=(0.8, 0.6, 0.6),
         **kw):
    """A record whose samples differ by the given shifts: ``match`` and ``fd`` per configuration,
    the CLIP gains over s = 1, the fills' mean border steps and hole matches (fine-tuned, the
    same-budget control, the base model's replacement trick)."""
    rng = np.random.default_rng(0)
    match = {CH.EMPTY: 0.3, CH.S1: 0.6, CFG: 0.8, CLIP2: 0.65, CLIP5: 0.7, CLIP20: 0.7, **(match or {})}
    fd = {CH.EMPTY: 80.0, CH.S1: 40.0, CFG: 30.0, CLIP2: 45.0, CLIP5: 46.0, CLIP20: 50.0, **(fd or {})}
    guide_plus = {CLIP20: 10.0, **(guide_plus or {})}
    judge_plus = {CLIP20: 3.0, **(judge_plus or {})}
    caption = rng.normal(0, 0.15, N)  # how hard each caption is: shared by every configuration
    reps = rng.normal(0, 3, 200)  # the shared reference resample of each bootstrap replicate
    clip_noise = rng.normal(0, 5, N)
    r = CH.Record(setting="test", cfg_s=3.0, clip_lam=2.0, clip_max=20.0, fd_floor=5.0)
    r.match = {k: match[k] + caption + rng.normal(0, 0.05, N) for k in KEYS}
    r.fd = {k: stats.Interval(v, v - 6, v + 6, 200, method="bootstrap") for k, v in fd.items()}
    r.fd_reps = {k: v + reps + rng.normal(0, 0.5, 200) for k, v in fd.items()}
    r.guide = {k: 50 + guide_plus.get(k, 0.0) + clip_noise + rng.normal(0, 1, N) for k in KEYS}
    r.judge = {k: 50 + judge_plus.get(k, 0.0) + clip_noise + rng.normal(0, 1, N) for k in KEYS}
    scene = rng.normal(0, 0.01, N)
    fills = ("fine-tuned", "control", "replacement trick")
    r.seam = {**{f: v + scene + rng.normal(0, 0.002, N) for f, v in zip(fills, seam)}, "real": rng.normal(0, 1e-4, N)}
    r.hole_match = {f: v + scene + rng.normal(0, 0.05, N) for f, v in zip(fills, hole)}
    r.fields = {k: {a: (rng.random(N) < match[k]).astype(float) for a in CH.ATTRIBUTES} for k in KEYS}
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def _rows(r) -> dict:
    return {c.name: c for c in CH.claims(r)}


def test_every_rule_holds_on_a_record_built_to_pass_with_its_kind():
    rows = _rows(_rec())
    assert list(rows) == ["follows_prompts", "cfg_beats_clip_caption", "cfg_beats_clip_quality",
                          "clip_inflates_own_score", "inpainting_beats_replacement", "not_tested"]
    assert {k: c.holds for k, c in rows.items()} == {**{k: "yes" for k in rows}, "not_tested": "n/a"}
    assert rows["follows_prompts"].kind == "check"
    assert all(c.kind == "paper" for k, c in rows.items() if k != "follows_prompts")
    assert all(c.test and "partly" not in c.claim for c in rows.values() if c.holds != "n/a")
    # a fine-tune is a training outcome from one seed: provisional; FD from 200 replicates too
    assert rows["inpainting_beats_replacement"].seeds == 1 and rows["inpainting_beats_replacement"].provisional
    assert any("B = 200" in w for w in rows["cfg_beats_clip_quality"].provisional_because)
    assert not rows["cfg_beats_clip_caption"].provisional


def test_cfg_against_clip_guidance_can_fail_and_is_two_rows():
    rows = _rows(_rec(match={CFG: 0.55}, fd={CFG: 60.0}))  # CFG worse on both: two findings, two rows
    assert rows["cfg_beats_clip_caption"].holds == "no" and rows["cfg_beats_clip_quality"].holds == "no"
    rows = _rows(_rec(match={CFG: 0.65}))  # equal caption match: not significant, with the detectable effect
    assert rows["cfg_beats_clip_caption"].holds == "not significant"
    assert "could detect an effect of about" in rows["cfg_beats_clip_caption"].why
    assert rows["cfg_beats_clip_quality"].holds == "yes"  # the other finding stands on its own


def test_clip_guidance_is_taken_at_table_1s_lambda_not_the_best_of_the_sweep():
    # lambda = 5 matches captions best, better than CFG; Table 1's lambda = 2 does not
    r = _rec(match={CLIP5: 0.9})
    row = _rows(r)["cfg_beats_clip_caption"]
    assert row.holds == "yes" and "lambda = 2" in row.test
    assert "here 5" in row.amended and "reads 'no'" in row.amended  # the second edition's rule, said


def test_caption_match_is_paired_over_captions():
    # captions differ far more than configurations: separate intervals overlap, the paired one does not
    r = _rec(match={CFG: 0.67})
    a, b = stats.mean_ci(r.match[CFG]), stats.mean_ci(r.match[CLIP2])
    assert stats.compare(a, b, independent=True) == "not significant"
    row = _rows(r)["cfg_beats_clip_caption"]
    assert row.holds == "yes" and row.evidence["match CFG - CLIP guidance"].method == "t-paired"


def test_the_inflation_conjunction_takes_its_weakest_part():
    row = _rows(_rec(judge_plus={CLIP20: 10.0}))["clip_inflates_own_score"]  # the judge gains as much
    assert row.parts["the guide's gain exceeds the judge's"] == "not significant"
    assert row.parts["by more than under CFG"] == "yes" and row.holds == "not significant"
    r = _rec()  # CFG inflates the guide's score exactly as much
    r.guide[CFG], r.judge[CFG] = r.guide[CLIP20], r.judge[CLIP20] + np.resize([0.5, -0.5], N)
    row = _rows(r)["clip_inflates_own_score"]
    assert row.parts["the guide's gain exceeds the judge's"] == "yes" and row.holds == "not significant"
    r.guide[CFG] = r.guide[CFG] + 5.0  # ... or more: the conjunction fails
    assert _rows(r)["clip_inflates_own_score"].holds == "no"
    row = _rows(_rec(fd={CLIP20: 20.0}))["clip_inflates_own_score"]  # FD better than CFG's: said in the row
    assert row.holds == "yes" and "not worse as in Fig. 6" in row.ours and "is not reproduced" in row.ours
    row = _rows(_rec(fd={CLIP20: 45.0}, judge_plus={CLIP20: -1.0}, match={CLIP20: 0.55}))["clip_inflates_own_score"]
    assert "pattern (a higher guide score at worse FD, not seen by an independent judge) shows here" in row.ours
    # the judge's gain wholly below 0 at better FD: said as "below 0", not "not below 0"
    row = _rows(_rec(fd={CLIP20: 20.0}, judge_plus={CLIP20: -3.0}))["clip_inflates_own_score"]
    assert "the judge's gain is below 0" in row.ours and "not below 0" not in row.ours


def test_inpainting_is_tested_against_a_same_budget_control_and_takes_its_weakest_part():
    r = _rec()
    r.seam["fine-tuned"] = r.seam["control"] + np.resize([0.002, -0.002], N)  # no difference on average
    row = _rows(r)["inpainting_beats_replacement"]
    assert row.parts["smaller steps across the hole's border"] == "not significant"
    assert row.parts["better caption match in the hole"] == "yes" and row.holds == "not significant"
    assert "same extra training" in row.test and row.amended
    assert _rows(_rec(seam=(0.04, 0.03, 0.03)))["inpainting_beats_replacement"].holds == "no"
    # better than the less-trained base model, no better than the control: the extra training did it
    row = _rows(_rec(seam=(0.02, 0.02, 0.03), hole=(0.8, 0.8, 0.6)))["inpainting_beats_replacement"]
    assert row.holds == "not significant" and "not the same budget" in row.ours


def test_cfg_against_clip_guidance_reports_each_attribute():
    row = _rows(_rec())["cfg_beats_clip_caption"]
    assert "by attribute (shape" in row.ours and "background" in row.ours


def test_gates_say_did_not_train_without_pre_empting_fd():
    rows = _rows(_rec(fd={CH.S1: 60.0}))  # unguided FD 60 > 10 x the floor 5
    assert {k for k, c in rows.items() if c.holds == "did not train"} == {
        "follows_prompts", "cfg_beats_clip_caption", "clip_inflates_own_score", "inpainting_beats_replacement"}
    assert "10x the real-vs-real floor" in rows["follows_prompts"].why
    assert rows["cfg_beats_clip_quality"].holds == "yes"  # an FD gate never decides an FD row
    rows = _rows(_rec(match={CH.S1: 0.3}))  # the model ignores its captions
    assert rows["follows_prompts"].holds == "not significant"
    assert all(rows[k].holds == "did not train" for k in ("cfg_beats_clip_caption", "cfg_beats_clip_quality",
                                                          "clip_inflates_own_score", "inpainting_beats_replacement"))
    assert "follows_prompts" in rows["cfg_beats_clip_quality"].why


def test_the_size_row_only_where_a_wider_model_was_trained():
    r = _rec()
    assert "guidance_beats_size" not in _rows(r)
    rng = np.random.default_rng(3)
    r.match[("big", 1.0)] = r.match[CH.S1] + 0.05 + rng.normal(0, 0.01, N)
    r.fd[("big", 1.0)], r.fd_reps[("big", 1.0)] = r.fd[CH.S1], r.fd_reps[CH.S1]
    r.size_ratio = 2.5
    row = _rows(r)["guidance_beats_size"]
    assert row.holds == "yes" and row.seeds == 1 and "2.5x" in row.test
    r.match[("big", 1.0)] = r.match[CFG] + 0.05
    assert _rows(r)["guidance_beats_size"].holds == "no"


def test_the_record_round_trips_and_the_old_file_names_what_it_lacks():
    r = _rec()
    back = CH.Record.from_json(json.loads(json.dumps(r.to_json())))
    assert [(c.name, c.holds, c.ours) for c in CH.claims(back)] == [(c.name, c.holds, c.ours) for c in CH.claims(r)]
    old = json.loads((ROOT / "book" / "results" / "06_glide.json").read_text())
    if "record" in old:
        pytest.skip("re-recorded through the typed seam")
    rec = CH.record_from_numbers(C.decode(old["numbers"]), old["run_card"])
    assert rec.clip_lam == 2.0 and rec.cfg_s == 3.0 and rec.fd[CLIP2].n == 200
    rows = C.derive(CH.RULES, rec, strict=False)
    assert [c.name for c in rows if isinstance(c, C.Claim)] == ["not_tested"]
    lacks = " ".join(str(m) for m in rows if isinstance(m, C.Missing))
    assert "follows_prompts" in lacks and "'match'" in lacks and "'fd_reps'" in lacks
