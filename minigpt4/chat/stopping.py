"""When an answer ends: stop token sequences (every tokenisation of the stop text), the tokenizer's EOS
(never ``generation_config.json``'s, which is wrong in the official Vicuna weights), or a cancel flag."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import torch
from transformers import StoppingCriteria

# texts a stop text is tokenised after: alone, after a word, after a line break. LLaMA gives "###" two
# tokenisations this way: [835] alone and [2277, 29937] after a word (the official StoppingCriteriaSub)
_CONTEXTS = ("", "a", "a\n")


def stop_sequences(tokenizer: Any, stop: str) -> list[list[int]]:
    """The token sequences of ``stop`` as the tokenizer writes it in each context (EOS: none needed)."""
    if not stop or stop == tokenizer.eos_token:
        return []
    found: list[list[int]] = []
    for before in _CONTEXTS:
        head = tokenizer(before, add_special_tokens=False).input_ids if before else []
        ids = tokenizer(before + stop, add_special_tokens=False).input_ids
        tail = ids[len(head) :] if ids[: len(head)] == head else []
        if tail and tokenizer.decode(tail).strip() == stop and tail not in found:
            found.append(tail)
    return found


class StopRule(StoppingCriteria):
    """Done when every row ends with one of ``sequences`` or has produced ``eos_id``, or ``cancel`` is set."""

    def __init__(self, sequences: Sequence[Sequence[int]], eos_id: int | None, cancel: threading.Event | None = None) -> None:
        self.sequences = [torch.tensor(s) for s in sequences if len(s)]
        self.eos_id = eos_id
        self.cancel = cancel

    def ended(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[B] bool: which rows are done. ``input_ids`` holds the generated tokens only (the prompt is
        given to ``generate`` as embeddings)."""
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if self.eos_id is not None and input_ids.shape[1]:
            done |= (input_ids == self.eos_id).any(dim=1)
        for seq in self.sequences:
            if input_ids.shape[1] >= len(seq):
                done |= (input_ids[:, -len(seq) :] == seq.to(input_ids.device)).all(dim=1)
        return done

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        done = self.ended(input_ids)
        if self.cancel is not None and self.cancel.is_set():
            done[:] = True
        return done
