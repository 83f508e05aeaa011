"""Optimizer groups, the endless resumable data stream and the console line, on small modules."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import ConcatDataset, Dataset

from minigpt4.training.data import InfiniteLoader, MixingSampler, batch_size_of, concat_datasets
from minigpt4.training.optim import build_optimizer, param_groups
from minigpt4.utils.logging import format_train_line


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.frozen = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.proj = nn.Linear(4, 3)
        self.scale = nn.Parameter(torch.ones(3))
        for p in self.frozen.parameters():
            p.requires_grad_(False)


def test_adamw_groups_and_settings():
    net = _Net()
    run = OmegaConf.create({"init_lr": 3e-5, "weight_decay": 0.05, "beta1": 0.8, "beta2": 0.95})
    opt = build_optimizer(net, run)
    decay, no_decay = opt.param_groups
    assert [p is net.proj.weight for p in decay["params"]] == [True] and decay["weight_decay"] == 0.05
    assert {id(p) for p in no_decay["params"]} == {id(net.norm.weight), id(net.norm.bias), id(net.proj.bias), id(net.scale)}
    assert no_decay["weight_decay"] == 0.0
    frozen = {id(p) for p in net.frozen.parameters()}
    assert not frozen & {id(p) for g in opt.param_groups for p in g["params"]}
    assert decay["betas"] == (0.8, 0.95) and decay["eps"] == 1e-8 and decay["lr"] == 3e-5
    assert isinstance(opt, torch.optim.AdamW)


def test_no_trainable_parameters_is_an_error():
    net = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        param_groups(net, 0.05)


class _Items(Dataset):
    """Items are their own index; ``None`` for indices in ``bad``; records set_epoch calls."""

    def __init__(self, n: int, bad=()) -> None:
        self.n, self.bad, self.epochs = n, set(bad), []

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return None if i in self.bad else {"image": torch.tensor([float(i)]), "image_id": str(i)}

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def collater(self, samples):
        kept = [s for s in samples if s is not None]
        batch = {"image": torch.stack([s["image"] for s in kept])} if kept else {}
        return {**batch, "skipped": len(samples) - len(kept)}


def _ids(batch) -> list[int]:
    return [int(v) for v in batch["image"].flatten().tolist()]


def test_stream_is_endless_reshuffled_and_covers_each_pass():
    ds = _Items(10)
    loader = InfiniteLoader(ds, ds.collater, batch_size=3, seed=7)
    assert loader.batches_per_pass == 3  # drop_last: 9 of 10 samples per pass
    passes = [[i for _ in range(3) for i in _ids(next(loader))] for _ in range(3)]
    assert all(len(set(p)) == 9 for p in passes)
    assert passes[0] != passes[1]  # reshuffled per pass
    assert ds.epochs == [0, 1, 2]  # the dataset hears the pass number
    again = InfiniteLoader(ds, ds.collater, batch_size=3, seed=7)
    assert [i for _ in range(3) for i in _ids(next(again))] == passes[0]  # deterministic
    other_seed = InfiniteLoader(ds, ds.collater, batch_size=3, seed=8)
    assert [i for _ in range(3) for i in _ids(next(other_seed))] != passes[0]


def test_resume_mid_pass_gives_the_same_batches():
    ds = _Items(23)
    ref = InfiniteLoader(ds, ds.collater, batch_size=4, seed=3)
    stream = [_ids(next(ref)) for _ in range(17)]  # crosses pass boundaries (5 batches per pass)
    first = InfiniteLoader(ds, ds.collater, batch_size=4, seed=3)
    for _ in range(7):
        next(first)
    state = first.state_dict()
    assert state == {"data_pass": 1, "batch_in_pass": 2}
    resumed = InfiniteLoader(ds, ds.collater, batch_size=4, seed=3)
    resumed.load_state_dict(state)
    assert [_ids(next(resumed)) for _ in range(10)] == stream[7:]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_ranks_get_disjoint_shares(num_workers):
    ds = _Items(16)
    shares = []
    for rank in range(2):
        loader = InfiniteLoader(ds, ds.collater, batch_size=2, seed=0, rank=rank, world_size=2, num_workers=num_workers)
        shares.append([i for _ in range(4) for i in _ids(next(loader))])
    assert not set(shares[0]) & set(shares[1]) and len(set(shares[0]) | set(shares[1])) == 16


def test_empty_batches_and_too_small_data():
    ds = _Items(4, bad={0, 1, 2, 3})
    data, collate = concat_datasets({"only": ds})
    batch = next(InfiniteLoader(data, collate, batch_size=2, seed=0))
    assert batch_size_of(batch) == 0 and batch["skipped"] == 2
    with pytest.raises(ValueError, match=r"4 samples, 2 per rank over 2 rank\(s\): fewer than run.batch_size_train=3"):
        InfiniteLoader(ds, collate, batch_size=3, seed=0, rank=0, world_size=2)
    with pytest.raises(ValueError, match="no training datasets"):
        concat_datasets({})
    cat, _ = concat_datasets({"a": _Items(3), "b": _Items(5)})
    assert len(cat) == 8 and cat[0]["dataset"] == "a" and cat[3]["dataset"] == "b"


def _source_counts(ratios, seed=0, epoch=0, rank=0, world=1, sizes=(50, 200)) -> tuple[list[int], list[int]]:
    cat = ConcatDataset([_Items(n) for n in sizes])
    sampler = MixingSampler(cat, ratios, world, rank, seed)
    sampler.set_epoch(epoch)
    order = list(sampler)
    return order, [sum(1 for i in order if (i >= sizes[0]) == bool(d)) for d in range(2)]


def test_sample_ratio_mixes_by_weight_deterministically():
    """sample_ratio 3:1 over a 50- and a 200-sample dataset: ~75% of a pass from the small one (so it
    repeats, reshuffled), the pass keeps the pool's length, same order for the same (seed, pass)."""
    order, (small, big) = _source_counts([3.0, 1.0])
    assert len(order) == 250 and 0.68 < small / 250 < 0.82
    assert len(set(i for i in order if i < 50)) == 50  # the small dataset is walked through, not sampled at random
    assert _source_counts([3.0, 1.0])[0] == order and _source_counts([3.0, 1.0], epoch=1)[0] != order
    shares = [_source_counts([3.0, 1.0], rank=r, world=2)[0] for r in (0, 1)]
    assert sorted(shares[0] + shares[1]) == sorted(order)  # ranks split one pass
    skipped = MixingSampler(ConcatDataset([_Items(50), _Items(200)]), [3.0, 1.0], 1, 0, 0)
    skipped.skip = 10
    assert list(skipped) == order[10:]  # exact resume mid-pass


def test_sample_ratio_on_some_entries_only_is_an_error():
    from omegaconf import OmegaConf

    from minigpt4.errors import ConfigError
    from minigpt4.tasks.captioning import CaptioningTask

    cfg = OmegaConf.create({"a": {"builder": "x", "sample_ratio": 2.0}, "b": {"builder": "x", "sample_ratio": None}})
    with pytest.raises(ConfigError, match=r"sample_ratio is set on \['a'\] but not on \['b'\]: set it on every entry"):
        CaptioningTask().build_datasets(cfg)


def test_console_line_format():
    line = format_train_line(0, 50, 500, 270.4, 0.000028, 1.52841, 0.575, 0.0, 18202)
    assert line == "Train: epoch [0] [ 50/500] eta 0:04:30 lr 0.000028 loss 1.5284 time 0.5750 data 0.0000 max mem 18202"
