"""Stage 1 end to end on the tiny stack: the official stage-1 config on shards made by minigpt4-shards,
2 ranks under torchrun mixing laion : cc_sbu by 115 : 14, exact resume from step checkpoints (after
SIGKILL, SIGTERM, and across 2 ranks), and bad data skipped, named and counted, or stopping the run."""

from __future__ import annotations

import re
import signal

import pytest
import yaml

from minigpt4.training.checkpoint import load_checkpoint
from tests.helpers.nodes import free_ports, run_nodes, torchrun_nodes
from tests.helpers.paths import REPO
from tests.helpers.processes import interrupt_when
from tests.helpers.stage1 import STAGE1_CFG, make_all_bad_shards, make_bad_shards, make_shard_sets, stage1_options
from tests.helpers.training import assert_same_weights, epoch_records, final_weights, run_dirs, run_train, train_cmd, train_env

pytestmark = pytest.mark.slow

JOB = "minigpt4_pretrain"  # the official config's job_name
# 2 epochs of 12 steps, batch 4, a step checkpoint every 5 global steps
RUN = {"max_epoch": 2, "iters_per_epoch": 12, "warmup_steps": 4, "log_freq": 1, "save_every_steps": 5}


@pytest.fixture(scope="module")
def shard_sets(synthetic_flickr, tmp_path_factory) -> dict[str, str]:
    return make_shard_sets(synthetic_flickr, tmp_path_factory.mktemp("shards"))


@pytest.fixture(scope="module")
def reference(tiny_stack, shard_sets, tmp_path_factory):
    """An uninterrupted single-process run of RUN: its run folder."""
    out = tmp_path_factory.mktemp("stage1_reference")
    run_train(stage1_options(tiny_stack, shard_sets, out, **RUN), cfg=STAGE1_CFG)
    (run_dir,) = run_dirs(out, JOB)
    return run_dir


def test_official_stage1_config_on_two_nodes_mixes_by_ratio_and_two_ranks_resume_exactly(tiny_stack, shard_sets, tmp_path):
    """The official stage-1 YAML (paths edited) with a DataLoader worker per rank, on two "nodes" of one rank each
    (torchrun --nnodes 2 on localhost): the stage-1 text settings (no template, newline, the tiny type's
    40 tokens), per-entry counts in the log lines and records near 115 : 14. The same job on one node
    with 2 ranks, SIGKILLed (every process) after a step checkpoint and resumed with --resume auto, ends
    with the same llama_proj and counts: the streams follow the global rank, and resume to the batch."""
    run = {**RUN, "log_freq": 4}
    nodes = tmp_path / "nodes"
    node_opts = stage1_options(tiny_stack, shard_sets, nodes / "out", workers=1, **run)
    outs = run_nodes(
        "train", torchrun_nodes([REPO / "train.py", "--cfg-path", STAGE1_CFG, "--options", *node_opts], nodes, free_ports(1)[0])
    )
    (run_dir,) = run_dirs(nodes / "out", JOB)
    model = yaml.safe_load((run_dir / "config.yaml").read_text())["model"]
    assert (model["prompt_template"], model["end_sym"], model["max_txt_len"]) == ("{}", "\n", 40)
    said = r"Training data \(streamed, each batch from one entry\): laion: 4 shard\(s\), 89\.1% of the batches; cc_sbu: 4 shard"
    assert re.search(said, outs[0]) and "2 rank(s) on cpu" in outs[0]
    lines = re.findall(r"Train: epoch \[\d\] \[\s*\d+/12\].* \| laion (\d+)(?: loss \d\.\d{4})?, cc_sbu (\d+)", outs[0])
    assert len(lines) == 2 * 4, outs[0][-3000:]  # steps 0, 4, 8, 11 of each epoch
    counts = [r["samples_per_dataset"] for r in epoch_records(run_dir)]
    laion, cc_sbu = sum(c["laion"] for c in counts), sum(c["cc_sbu"] for c in counts)
    assert laion + cc_sbu == 2 * 12 * 2 * 4 and 0.8 < laion / (laion + cc_sbu) < 0.97, counts  # 115/129 = 0.891
    assert all(set(r["loss_per_dataset"]) == {"laion", "cc_sbu"} for r in epoch_records(run_dir))

    opts = stage1_options(tiny_stack, shard_sets, tmp_path / "b", workers=1, **run)
    cmd = train_cmd(opts, nproc=2, cfg=STAGE1_CFG)
    rc, text, _ = interrupt_when(cmd, tmp_path / "b.txt", r"Train: epoch \[1\] \[\s*8/12\]", signal.SIGKILL, train_env(), to_group=True)
    (killed,) = run_dirs(tmp_path / "b", JOB)
    assert rc == -signal.SIGKILL and not (killed / "checkpoint_1.pth").exists(), text[-2000:]
    ckpt = load_checkpoint(killed / "checkpoint_1_step_8.pth")  # global step 20
    assert (ckpt["epoch"], ckpt["step_in_epoch"], ckpt["world_size"]) == (1, 8, 2)
    assert all(s["data"]["kind"] == "stream" and s["data"]["drawn"] == 8 for s in ckpt["rank_states"])
    assert "continuing from" in run_train(opts, nproc=2, cfg=STAGE1_CFG, resume="auto").stdout
    assert_same_weights(final_weights(killed, 1), final_weights(run_dir, 1))
    assert [r["samples_per_dataset"] for r in epoch_records(killed)] == counts


@pytest.mark.xdist_group("stage1_reference")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_stopped_mid_epoch_then_resume_auto_is_bit_identical(tiny_stack, shard_sets, reference, tmp_path, sig):
    """One rank, 1 DataLoader worker: SIGKILL after a step checkpoint (resumed from it) or SIGTERM (which
    writes one where it stops), then --resume auto: llama_proj equals the uninterrupted run's, the
    streamed batches after the resume point included."""
    opts = stage1_options(tiny_stack, shard_sets, tmp_path, workers=1, **RUN)
    rc, text, _ = interrupt_when(train_cmd(opts, cfg=STAGE1_CFG), tmp_path / "out.txt", r"Train: epoch \[1\] \[\s*4/12\]", sig, train_env())
    (run_dir,) = run_dirs(tmp_path, JOB)
    assert not (run_dir / "checkpoint_1.pth").exists(), "stopped too late"
    steps = sorted(int(p.stem.split("_")[-1]) for p in run_dir.glob("checkpoint_1_step_*.pth"))
    assert steps, sorted(p.name for p in run_dir.iterdir())
    if sig == signal.SIGTERM:
        assert rc == 143 and re.search(rf"Interrupted by SIGTERM at epoch 1 step {steps[-1]};", text), text[-2000:]
    said = run_train(opts, resume="auto", cfg=STAGE1_CFG).stdout
    assert f"continuing from {run_dir}/checkpoint_1_step_{steps[-1]}.pth" in said
    assert_same_weights(final_weights(run_dir, 1), final_weights(reference, 1))
    assert [r["samples_per_dataset"] for r in epoch_records(run_dir)] == [r["samples_per_dataset"] for r in epoch_records(reference)]


def test_bad_data_is_skipped_named_and_counted_and_all_bad_data_stops(tiny_stack, shard_sets, tmp_path):
    """A laion set with a truncated tar, a sample without caption and an undecodable JPEG trains to the
    end, the log naming each; a set whose every image is undecodable stops with one clear error."""
    bad = make_bad_shards(shard_sets["laion"], tmp_path / "bad")
    patterns = {**shard_sets, "laion": bad}
    proc = run_train(stage1_options(tiny_stack, patterns, tmp_path / "out", max_epoch=1, iters_per_epoch=30, log_freq=10), cfg=STAGE1_CFG)
    text = proc.stdout + proc.stderr
    assert re.search(r"datasets\.laion: skipped: \S+/00002\.tar: truncated tar \(no end-of-archive marker\)", text), text[-3000:]
    assert re.search(r"datasets\.laion: skipped: \S+/00003\.tar: sample nocaption: \.json has no 'caption' field", text)
    assert re.search(r"datasets\.laion: skipped: \S+/00003\.tar: sample badjpeg: undecodable \.jpg", text)
    (run_dir,) = run_dirs(tmp_path / "out", JOB)
    (record,) = epoch_records(run_dir)
    problems = record["data_problems"]["laion"]
    assert {p.rsplit("/", 1)[1] for p in problems} == {"00002.tar", "00003.tar"} and problems[f"{bad.split('{')[0]}00003.tar"] >= 2
    assert record["skipped"] >= 2 and re.search(r"datasets\.laion: \d+ bad samples or shards skipped in epoch 0: ", text)

    all_bad = {**shard_sets, "laion": make_all_bad_shards(tmp_path / "all_bad")}
    proc = run_train(stage1_options(tiny_stack, all_bad, tmp_path / "out2", max_epoch=1, iters_per_epoch=30), cfg=STAGE1_CFG, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    said = r"error: datasets\.laion: \d+ of \d+ samples were unusable \(more than max_drop_share 0\.5\); the worst shards: "
    assert re.search(said + r"\S+/0000[01]\.tar \(\d+ bad\)", proc.stderr), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
