"""Stop rules: every tokenisation of the stop text, the tokenizer's EOS, a cancel flag."""

from __future__ import annotations

import threading

import torch

from minigpt4.chat.stopping import StopRule, stop_sequences

LLAMA_HASHES = [[835], [2277, 29937]]  # "###" in LLaMA's vocabulary: alone, and after a word


def ended(rule: StopRule, *rows: list[int]) -> list[bool]:
    return rule(torch.tensor(rows), torch.zeros(len(rows), 5)).tolist()


def test_both_llama_tokenisations_of_hashes_stop_and_eos_stops():
    rule = StopRule(LLAMA_HASHES, eos_id=2)
    assert ended(rule, [100, 200, 835]) == [True]
    assert ended(rule, [100, 2277, 29937]) == [True]
    assert ended(rule, [100, 29937, 2277]) == [False]
    assert ended(rule, [100, 2, 7]) == [True]  # EOS, even with a token after it (padding)
    assert ended(rule, [100, 200, 300]) == [False]
    assert ended(rule, [100, 835], [100, 200]) == [True, False]  # per row


def test_the_eos_comes_from_the_tokenizer_not_the_generation_config(tiny_stack):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_stack["llama_model"])
    rule = StopRule(stop_sequences(tok, "###"), tok.eos_token_id)
    assert rule.eos_id == 2
    assert stop_sequences(tok, "</s>") == []  # EOS itself needs no sequence


def test_stop_sequences_find_every_tokenisation(tiny_stack):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_stack["llama_model"])
    found = stop_sequences(tok, "###")
    ids = lambda text: tok(text, add_special_tokens=False).input_ids  # noqa: E731
    alone, after_word = ids("###"), ids("a###")[len(ids("a")) :]
    assert alone != after_word  # the tiny tokenizer, like LLaMA's, has two
    assert alone in found and after_word in found
    for seq in found:
        assert tok.decode(seq).strip() == "###"


def test_cancel_stops_every_row():
    cancel = threading.Event()
    rule = StopRule(LLAMA_HASHES, eos_id=2, cancel=cancel)
    assert ended(rule, [5, 6], [7, 8]) == [False, False]
    cancel.set()
    assert ended(rule, [5, 6], [7, 8]) == [True, True]
