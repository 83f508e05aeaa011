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


def test_step_stats_pack_reduce_and_unpack_by_name():
    from minigpt4.training.step_stats import StepStats, dataset_stat

    stats = StepStats(["loss", "samples", "flops", dataset_stat("a"), dataset_stat("b")])
    packed = stats.pack({"samples": 3, "loss": 1.25, "flops": None, dataset_stat("b"): 2})
    assert packed.dtype == torch.float64 and packed.tolist() == [1.25, 3.0, 0.0, 0.0, 2.0]  # missing/None: 0
    assert stats.unpack(packed) == {"loss": 1.25, "samples": 3.0, "flops": 0.0, "samples_from:a": 0.0, "samples_from:b": 2.0}
    assert stats.reduce({"loss": 0.1 + 0.2}) == {**dict.fromkeys(stats.names, 0.0), "loss": 0.1 + 0.2}  # one rank: exact
    with pytest.raises(KeyError, match=r"\['lost'\] are not in the layout"):
        stats.pack({"lost": 1.0})
    with pytest.raises(ValueError, match=r"named twice: \['loss'\]"):
        StepStats(["loss", "samples", "loss"])


def test_step_stats_are_summed_over_ranks_by_name(tmp_path):
    """Two gloo processes: each entry is the sum of the ranks' values, read back by name."""
    import torch.multiprocessing as mp

    mp.spawn(_reduce_on_rank, args=(2, str(tmp_path / "store")), nprocs=2)
    assert (tmp_path / "ok_0").exists() and (tmp_path / "ok_1").exists()


def _reduce_on_rank(rank: int, world: int, store: str) -> None:
    import pathlib

    import torch.distributed as td

    from minigpt4.training.step_stats import StepStats

    td.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        out = StepStats(["loss", "signal", "signalled", "samples"]).reduce({"loss": 0.5 + rank, "signalled": rank, "samples": 4})
        assert out == {"loss": 2.0, "signal": 0.0, "signalled": 1.0, "samples": 8.0}, out
        pathlib.Path(store).with_name(f"ok_{rank}").touch()
    finally:
        td.destroy_process_group()


class _Sink:
    """A logger and a tracker: what the meter logged and the scalars it reported."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.warnings: list[str] = []
        self.scalars: list[tuple[dict, int]] = []

    def info(self, msg: str, *args) -> None:
        self.lines.append(msg % args if args else msg)

    def warning(self, msg: str, *args) -> None:
        self.warnings.append(msg % args)

    def track(self, values: dict, step: int) -> None:
        self.scalars.append((values, step))


def _meter(sink: _Sink, caching: bool = True):
    from minigpt4.tasks.captioning import CaptioningTask
    from minigpt4.tasks.protocol import THROUGHPUT_COUNTS
    from minigpt4.training.meter import TrainMeter

    task = CaptioningTask(feature_cache="cache" if caching else None)
    names = (*THROUGHPUT_COUNTS, *task.count_names)
    return TrainMeter(4, 3, names, ["a", "b"], 1e3, task.count_rates, task.count_record, sink, sink.track, lambda: 77)


def _stats(samples: int, tokens: float, hits: float, encoded: float, a: int, skipped: int = 0, loss: float = 1.0) -> dict[str, float]:
    return {
        "loss_sum_from:a": loss * a,
        "loss_sum_from:b": loss * (samples - a),
        "samples": samples,
        "skipped": skipped,
        "tokens": tokens,
        "positions": tokens * 2,
        "flops": 100.0,
        "feature_hits": hits,
        "feature_encoded": encoded,
        "samples_from:a": a,
        "samples_from:b": samples - a,
    }


def test_meter_windows_rates_line_and_epoch_record():
    sink = _Sink()
    meter = _meter(sink)
    meter.begin(2)
    losses = [4.0, 3.0, 2.0, 1.0]
    for step, loss in enumerate(losses):
        meter.add(_stats(4, 10.0, step, 1, a=1, skipped=step % 2, loss=loss))
        meter.step(loss, 0.5, 0.25)
        if meter.due(step):  # steps 0 and 3 (log_freq 3, and the last of 4)
            meter.log_window(step, lr=0.01)
    assert [meter.due(s) for s in range(4)] == [True, False, False, True]
    rates0 = {"samples_per_s": 8.0, "tokens_per_s": 20.0, "padding": 0.5, "mfu": 0.2, "cache_hits": 0.0}
    rates1 = {"samples_per_s": 8.0, "tokens_per_s": 20.0, "padding": 0.5, "mfu": 0.2, "cache_hits": 0.6667}  # hits 1+2+3 of 6+3
    assert sink.lines == [
        format_train_line(2, 0, 4, 1.5, 0.01, 4.0, 0.5, 0.25, 77, rates0) + " | a 1 loss 4.0000, b 3 loss 4.0000",
        # the window restarted after step 0; per entry: its samples and sample-weighted loss
        format_train_line(2, 3, 4, 0.0, 0.01, 2.0, 0.5, 0.25, 77, rates1) + " | a 3 loss 2.0000, b 9 loss 2.0000",
    ]
    assert sink.lines[0].endswith(
        "max mem 77 samples/s 8.0 tokens/s 20 pad 50.0% mfu 20.0% cache hits 0% | a 1 loss 4.0000, b 3 loss 4.0000"
    )
    assert sink.scalars[1] == ({"train/loss": 2.0, "train/lr": 0.01, **{f"train/{k}": v for k, v in rates1.items()}}, 2 * 4 + 3)
    record = meter.record(lr=0.01)
    assert list(record) == [
        "epoch",
        "loss",
        "lr",
        "seconds",
        "samples_per_s",
        "tokens_per_s",
        "padding",
        "mfu",
        "feature_cache",
        "samples",
        "samples_per_dataset",
        "loss_per_dataset",
        "skipped",
        "global_step",
    ]
    assert record["loss"] == 2.5 and record["feature_cache"] == {"hits": 6, "encoded": 4} and record["padding"] == 0.5
    assert record["samples"] == 16 and record["samples_per_dataset"] == {"a": 4, "b": 12} and record["skipped"] == 2
    assert record["loss_per_dataset"] == {"a": 2.5, "b": 2.5}
    assert record["epoch"] == 2 and record["global_step"] == 12
    assert sink.warnings == ["Epoch 2: skipped 2 missing/corrupt samples (set run.strict_data to fail instead)"]
    meter.begin(3)  # a new epoch starts from nothing
    meter.add(_stats(2, 4.0, 0, 2, a=2))
    meter.step(7.0, 1.0, 0.0)
    meter.log_window(0, lr=0.02)
    assert meter.record(0.02)["loss"] == 7.0 and meter.record(0.02)["samples_per_dataset"] == {"a": 2, "b": 0}
    assert meter.record(0.02)["loss_per_dataset"] == {"a": 1.0, "b": None}  # no sample of b: no loss


def test_meter_state_continues_an_epoch_after_a_resume():
    """A step checkpoint's meter state: the resumed epoch's record equals the uninterrupted one's."""
    whole, first, second = _meter(_Sink()), _meter(_Sink()), _meter(_Sink())
    for m in (whole, first, second):
        m.begin(1)
    for step, loss in enumerate([4.0, 3.0, 2.0, 1.0]):
        part = first if step < 2 else second
        if step == 2:
            second.load_state_dict(first.state_dict())
        for m in (whole, part):
            m.add(_stats(4, 10.0, step, 1, a=1, skipped=step % 2, loss=loss))
            m.step(loss, 0.5, 0.25)
            if m.due(step):
                m.log_window(step, lr=0.01)
    timing = ("seconds", "samples_per_s", "tokens_per_s", "mfu")
    strip = lambda r: {k: v for k, v in r.items() if k not in timing}  # noqa: E731
    assert strip(second.record(0.01)) == strip(whole.record(0.01))


def test_meter_leaves_out_cache_hits_without_the_cache():
    sink = _Sink()
    meter = _meter(sink, caching=False)
    meter.add(_stats(4, 10.0, 0, 4, a=4))
    meter.step(1.0, 0.5, 0.0)
    meter.log_window(0, lr=0.01)
    assert "cache hits" not in sink.lines[0] and "train/cache_hits" not in sink.scalars[0][0]
    assert meter.record(0.01)["feature_cache"] == {"hits": 0, "encoded": 4}


def test_the_runner_names_what_a_task_or_model_lacks():
    from minigpt4.models.minigpt4 import MiniGPT4
    from minigpt4.models.protocol import TrainableModel
    from minigpt4.tasks.captioning import CaptioningTask
    from minigpt4.tasks.protocol import TrainingTask, missing_members
    from minigpt4.testing.tasks import NanInjectingTask
    from minigpt4.training.epoch_runner import check_components

    assert isinstance(CaptioningTask(), TrainingTask) and isinstance(NanInjectingTask(), TrainingTask)
    assert missing_members(CaptioningTask(), TrainingTask) == [] and missing_members(MiniGPT4, TrainableModel) == []

    class OldTask:
        def train_step(self, model, batch):
            return {"loss": 0}

    with pytest.raises(TypeError) as e:
        check_components(OldTask(), nn.Linear(2, 2))
    assert str(e.value) == (
        "run.task OldTask lacks count_names, build_datasets, prepare_training, count_rates, count_record "
        "(minigpt4.tasks.protocol.TrainingTask); the model Linear lacks place, trainable_state_dict "
        "(minigpt4.models.protocol.TrainableModel)"
    )


def test_caption_datasets_declare_their_capabilities(tmp_path):
    from minigpt4.datasets.caption_datasets import CaptionEvalDataset, CaptionTrainDataset
    from minigpt4.datasets.protocol import EpochAware, FeatureReading, Measurable, TokenCounting
    from minigpt4.datasets.records import CaptionRecord

    records = [CaptionRecord(image="x.jpg", image_id="0", captions=("a cat", "a small cat"))]
    train = CaptionTrainDataset(records, tmp_path, lambda im, g=None: im, str, ["<Img><ImageHere></Img> describe"])
    evaluation = CaptionEvalDataset(records, tmp_path, lambda im: im)
    assert all(isinstance(train, p) for p in (EpochAware, Measurable, TokenCounting, FeatureReading))
    assert isinstance(evaluation, FeatureReading) and not isinstance(evaluation, (EpochAware, Measurable))
    assert train.lengths(0) == [4, 5]  # words
    train.use_token_counter(len)
    assert train.count_tokens is len and train.lengths(0) == [36, 42]  # characters: the memo was dropped
    evaluation.use_features("a cache")
    assert evaluation.features == "a cache"
