"""Several machines end to end: two "nodes" on localhost, each with its own working directory, train
once under torchrun ``--nnodes 2`` and once as two SLURM tasks, then evaluate the run folder; only
global rank 0 writes, and both jobs give the same checkpoints. (SLURM's variables and which
launcher wins: tests/unit/utils/test_slurm.py.)"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers.nodes import free_ports, node_env, run_nodes, torchrun_nodes
from tests.helpers.paths import REPO
from tests.helpers.training import run_dirs

QUICKSTART_CFG = REPO / "train_configs" / "minigpt4_flickr_quickstart.yaml"


# ---- end to end: two "nodes" on localhost ------------------------------------------------
def slurm_tasks(args: list, tmp: Path, port: int) -> list[tuple[list, dict, Path, int]]:
    """Task 0 and task 1 of a 2-task SLURM step on one node, as ``srun python ...`` starts them."""
    return [
        (
            [sys.executable, *args],
            node_env(
                {
                    "SLURM_PROCID": str(task),
                    "SLURM_NTASKS": "2",
                    "SLURM_LOCALID": str(task),
                    "SLURM_JOB_ID": "77",
                    "SLURM_JOB_NODELIST": "localhost",
                    "MASTER_PORT": str(port),
                }
            ),
            tmp / f"task{task}",
            0o022 if task == 0 else 0o077,
        )
        for task in (0, 1)
    ]


def assert_written_by_rank0_only(run_dir: Path) -> None:
    """Rank 1 runs with umask 077: a file it wrote would not be group/other readable."""
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert files and all(p.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH) for p in files), [
        p for p in files if not p.stat().st_mode & stat.S_IRGRP
    ]


@pytest.mark.slow
def test_two_nodes_and_two_slurm_tasks_train_alike_then_the_nodes_evaluate(standin_eval, tmp_path):
    """torchrun --nnodes 2 (static rendezvous on 127.0.0.1) and a 2-task SLURM step each train 2 epochs
    of the stand-ins, and the torchrun job evaluates its run folder on two nodes: one run folder per
    job, every file written by global rank 0 (none in the nodes' own working directories), world size
    2 in the logs, checkpoints and metrics; both jobs' weights and losses are identical."""
    model = standin_eval["cfg_dict"]["model"]
    data = standin_eval["data"]
    run = {"max_epoch": 2, "iters_per_epoch": 2, "batch_size_train": 2, "log_freq": 1, "warmup_steps": 1}

    def train_args(out: Path) -> list:  # the feature cache: one folder shared by a job's two nodes
        return [
            REPO / "train.py",
            "--cfg-path",
            QUICKSTART_CFG,
            "--options",
            f"run.feature_cache={out.parent / 'features'}",
            *(f"model.{k}={model[k]}" for k in ("llama_model", "vit_ckpt", "q_former_model", "ckpt")),
            f"datasets.flickr30k_caption.build_info.ann_path={data / 'flickr30k_train.json'}",
            f"datasets.flickr30k_caption.build_info.image_path={data / 'flickr30k-images'}",
            f"run.output_dir={out}",
            *(f"run.{k}={v}" for k, v in run.items()),
        ]

    torch_tmp, slurm_tmp = tmp_path / "torchrun", tmp_path / "slurm"
    ports = free_ports(2)
    outs = run_nodes(
        "train",
        torchrun_nodes(train_args(torch_tmp / "out"), torch_tmp, ports[0])
        + slurm_tasks(train_args(slurm_tmp / "out"), slurm_tmp, ports[1]),
    )
    assert "2 rank(s) on cpu" in outs[0] and "2 rank(s) on cpu" in outs[2]
    assert "SLURM: 2 tasks (SLURM_NTASKS), rendezvous at localhost:" in outs[2] and "SLURM:" not in outs[3]
    (torch_run,) = run_dirs(torch_tmp / "out", "minigpt4_flickr_quickstart")
    (slurm_run,) = run_dirs(slurm_tmp / "out", "minigpt4_flickr_quickstart")

    def evaluate_args(run_dir: Path) -> list:
        return [
            "-m",
            "minigpt4.cli",
            "eval",
            run_dir,
            "--cfg-path",
            standin_eval["cfg"],
            "--options",
            "run.max_new_tokens=8",
            f"run.feature_cache={run_dir.parents[2] / 'features'}",
        ]

    # the evaluation under torchrun --nnodes 2 only: the SLURM job's checkpoints are those of the
    # torchrun job (asserted below), and its launch variables were read by the training above
    outs = run_nodes("eval", torchrun_nodes(evaluate_args(torch_run), torch_tmp, free_ports(1)[0], ("minigpt4.cli", "torchrun")))
    assert "3 checkpoint(s) on 10 test images, 2 rank(s)" in outs[0] and "wrote " in outs[0] and "wrote " not in outs[1]

    for cwd in ("torchrun/node0", "torchrun/node1", "slurm/task0", "slurm/task1"):
        assert not any((tmp_path / cwd).iterdir()), cwd  # nothing relative to a node's working directory
    for run_dir in (torch_run, slurm_run):
        assert_written_by_rank0_only(run_dir)
        files = {"config.yaml", "log.txt", "checkpoint_0.pth", "checkpoint_1.pth", "checkpoint_latest.pth"}
        assert {p.name for p in run_dir.iterdir()} == files | ({"eval"} if run_dir == torch_run else set())
        ckpt = torch.load(run_dir / "checkpoint_1.pth", weights_only=True)
        assert ckpt["world_size"] == 2 and len(ckpt["rank_states"]) == 2
    assert {p.name for p in (torch_run / "eval").iterdir()} == {
        "pretrained",
        "checkpoint_0",
        "checkpoint_1",
        "summary.csv",
        "summary.md",
        "summary.png",
        "report.html",
    }

    records = [[json.loads(line) for line in (r / "log.txt").read_text().splitlines()] for r in (torch_run, slurm_run)]
    assert [r["epoch"] for r in records[0]] == [0, 1] and records[0][1]["samples"] == 2 * 2 * 2
    assert [r["loss"] for r in records[0]] == [r["loss"] for r in records[1]]
    for epoch in (0, 1):
        a, b = (torch.load(r / f"checkpoint_{epoch}.pth", weights_only=True)["model"] for r in (torch_run, slurm_run))
        assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    for name in ("pretrained", "checkpoint_0", "checkpoint_1"):
        caps, metrics = (json.loads((torch_run / "eval" / name / f).read_text()) for f in ("captions.json", "metrics.json"))
        assert len(caps) == 10 and metrics["world_size"] == 2 and metrics["scores"]["Bleu_1"] > 0, name
