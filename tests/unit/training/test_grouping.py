"""Length-grouped training batches (run.group_by_length) on real Flickr30k caption lengths: little
padding, the same global batches on every rank, seeded, resumable."""

import json

import pytest

from minigpt4.training.data import InfiniteLoader, ResumableDistributedSampler
from tests.helpers.paths import DATA as TEST_DATA

DATA = TEST_DATA / "karpathy_test_refs.json"


@pytest.fixture(scope="module")
def lengths() -> list[int]:
    """LLM positions of a training sample for each of the 5,000 real Karpathy test captions, from its
    word count: about 55 for BOS, prompt and 32 image tokens, then about 1.3 tokens per word."""
    return [55 + round(1.3 * len(c.split())) for r in json.loads(DATA.read_text()) for c in r["captions"]]


def _rank_batches(lengths, world, batch, grouped, data_pass=0, skip=0):
    out = []
    for rank in range(world):
        s = ResumableDistributedSampler(
            range(len(lengths)), world, rank, seed=42, lengths=(lambda p: lengths) if grouped else None, batch_size=batch
        )
        s.set_epoch(data_pass)
        s.skip = skip
        order = list(s)
        out.append([order[i : i + batch] for i in range(0, len(order) - batch + 1, batch)])
    return out


def padding(lengths, global_batches) -> float:
    """Fraction of a padded batch's positions that are padding, over all global batches."""
    pad = total = 0
    for b in global_batches:
        longest = max(lengths[i] for i in b)
        pad += sum(longest - lengths[i] for i in b)
        total += longest * len(b)
    return pad / total


@pytest.mark.parametrize("world,batch", [(1, 12), (2, 6), (4, 16)])
def test_grouping_cuts_padding_on_real_caption_lengths(lengths, world, batch):
    grouped = _rank_batches(lengths, world, batch, grouped=True)
    plain = _rank_batches(lengths, world, batch, grouped=False)
    glob = lambda per_rank: [sum(step, []) for step in zip(*per_rank)]  # noqa: E731  (every rank's k-th batch)
    assert padding(lengths, glob(grouped)) <= 0.03
    assert padding(lengths, glob(plain)) >= 0.12  # 16% at a global batch of 12, 27% at 64
    # the same samples in a pass (the short remainder, dropped by the loader, is the last global batch)
    every = lambda per_rank: sorted(i for r in per_rank for b in r for i in b)  # noqa: E731
    n = len(lengths) // (world * batch) * world * batch
    assert len(every(grouped)) == len(every(plain)) == n and len(set(every(grouped))) == n


def test_grouped_order_is_seeded_shared_by_ranks_and_resumable(lengths):
    a = _rank_batches(lengths, 2, 6, grouped=True, data_pass=3)
    assert a == _rank_batches(lengths, 2, 6, grouped=True, data_pass=3)  # a pure function of seed and pass
    assert a != _rank_batches(lengths, 2, 6, grouped=True, data_pass=4)  # reshuffled each pass

    def spread(per_rank):
        steps = list(zip(*per_rank))
        return sum(max(lengths[i] for b in s for i in b) - min(lengths[i] for b in s for i in b) for s in steps) / len(steps)

    assert spread(a) < spread(_rank_batches(lengths, 2, 6, grouped=False)) / 5  # ranks share one length group
    resumed = _rank_batches(lengths, 2, 6, grouped=True, data_pass=3, skip=6 * 10)
    assert [r[:5] for r in resumed] == [r[10:15] for r in a]  # resume mid-pass: the same next batches


class _Words:
    """A dataset whose samples are their lengths, with ``lengths(pass)`` as the caption datasets have."""

    def __init__(self, lengths):
        self.data = lengths

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i]

    def lengths(self, data_pass):
        return self.data


def test_infinite_loader_groups_when_the_dataset_has_lengths(lengths):
    loader = InfiniteLoader(_Words(lengths[:600]), list, batch_size=12, seed=1, group_by_length=True)
    assert loader.grouped
    batches = [next(loader) for _ in range(40)]
    assert padding(list(range(300)), batches) <= 0.03
    state = loader.state_dict()
    nxt = [next(loader) for _ in range(3)]
    again = InfiniteLoader(_Words(lengths[:600]), list, batch_size=12, seed=1, group_by_length=True)
    again.load_state_dict(state)
    assert [next(again) for _ in range(3)] == nxt
    assert not InfiniteLoader(range(50), list, batch_size=5, seed=1, group_by_length=True).grouped  # no lengths()


@pytest.mark.parametrize("sampling", ["all", "random", "concat"])
def test_dataset_lengths_follow_the_items_draws(sampling):
    """``lengths(pass)`` counts the words of the instruction and answer each item has in that pass."""
    from minigpt4.datasets.caption_datasets import CaptionTrainDataset
    from minigpt4.datasets.records import CaptionRecord

    refs = json.loads(DATA.read_text())[:6]
    records = [
        CaptionRecord(image=DATA.with_name("flickr_1000268201.jpg").name, image_id=str(i), captions=tuple(r["captions"]))
        for i, r in enumerate(refs)
    ]
    data = CaptionTrainDataset(
        records,
        DATA.parent,
        lambda im, g=None: 0,
        lambda s: s,
        ["<ImageHere> Describe it.", "<ImageHere> What is in this picture?"],
        caption_sampling=sampling,
        seed=3,
    )
    for data_pass in (0, 5):
        data.set_epoch(data_pass)
        items = [data[i] for i in range(len(data))]
        assert data.lengths(data_pass) == [len(x["instruction_input"].split()) + len(x["answer"].split()) for x in items]
    data.use_token_counter(len)  # what the task gives: the LLM tokenizer's count (here: characters)
    assert data.lengths(5) == [len(x["instruction_input"]) + len(x["answer"]) for x in items]
