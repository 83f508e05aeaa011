"""Padding a batch of embedded sequences of different lengths into one LLM input."""

from __future__ import annotations

import torch


def pad_rows(
    rows: list[torch.Tensor], labels: list[list[int]], pad: torch.Tensor, pad_left: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of embeddings [L_i,H] and their labels -> (inputs_embeds [B,L,H] filled with ``pad``,
    attention_mask [B,L], labels [B,L] with -100 on padding). Training pads right; generation pads left."""
    length, dev = max(r.shape[0] for r in rows), pad.device
    out = pad.expand(len(rows), length, -1).clone()
    mask = torch.zeros(len(rows), length, dtype=torch.long, device=dev)
    target = torch.full((len(rows), length), -100, dtype=torch.long, device=dev)
    for i, (row, lab) in enumerate(zip(rows, labels)):
        n = row.shape[0]
        s = slice(length - n, length) if pad_left else slice(0, n)
        out[i, s], mask[i, s] = row, 1
        target[i, s] = torch.tensor(lab, device=dev)
    return out, mask, target
