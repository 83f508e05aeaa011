"""Several machines: torchrun's multi-node rendezvous and SLURM's task variables (``srun python
train.py``). Units: the SLURM environment (node lists, ranks, defaults, errors) and which launcher
wins. End to end: two "nodes" on localhost, each with its own working directory, train and then
evaluate the run folder, once under torchrun ``--nnodes 2`` and once as two SLURM tasks; only global
rank 0 writes, and both jobs give the same checkpoints, captions and scores."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minigpt4.utils import dist as du
from minigpt4.utils.slurm import LaunchEnvError, default_master_port, expand_nodelist, first_host, slurm_layout
from tests.helpers.paths import REPO, TINY_CFG
from tests.helpers.training import options, run_dirs, train_env

QUICKSTART_CFG = REPO / "train_configs" / "minigpt4_flickr_quickstart.yaml"
LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


# ---- units: SLURM's variables ------------------------------------------------------------
@pytest.mark.parametrize(
    "spec, hosts",
    [
        ("node01", ["node01"]),
        ("node[01-03,07]", ["node01", "node02", "node03", "node07"]),
        ("gpu-a[1,3]", ["gpu-a1", "gpu-a3"]),
        ("a,b.example.org,c", ["a", "b.example.org", "c"]),
        ("n[8-10],gpu[007-008],login", ["n8", "n9", "n10", "gpu007", "gpu008", "login"]),
        ("rack[1-2]-n[1,3]", ["rack1-n1", "rack1-n3", "rack2-n1", "rack2-n3"]),
        (" node[5] ", ["node5"]),
    ],
)
def test_expand_nodelist(spec, hosts):
    assert expand_nodelist(spec) == hosts


@pytest.mark.parametrize(
    "spec, why",
    [
        ("", "is empty"),
        ("node[1-3", "'[' without ']'"),
        ("node1]", "']' without '['"),
        ("n[[1]]", "nested"),
        ("node[a-b]", "bad range 'a-b'"),
        ("node[3-1]", "ends before it starts"),
        ("a,,b", "bad host name ''"),
        ("node[]", "bad range ''"),
    ],
)
def test_malformed_nodelist_names_the_variable(spec, why):
    with pytest.raises(ValueError, match=r"SLURM_STEP_NODELIST.*" + why.replace("[", r"\[").replace("]", r"\]")):
        expand_nodelist(spec, "SLURM_STEP_NODELIST")


def test_scontrol_decides_forms_the_parser_rejects(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path), prepend=os.pathsep)
    scontrol = tmp_path / "scontrol"
    scontrol.write_text('#!/bin/sh\n[ "$1 $2 $3" = "show hostnames odd[1-4:2]" ] && printf "odd1\\nodd2\\n"\n')
    scontrol.chmod(0o755)
    assert first_host("odd[1-4:2]") == "odd1"
    with pytest.raises(LaunchEnvError, match="SLURM_JOB_NODELIST='other\\['"):  # scontrol fails: the parser's error
        first_host("other[")
    assert first_host("plain[2-3]") == "plain2"  # the parser is used first


def slurm_env(**extra) -> dict[str, str]:
    return {
        "SLURM_PROCID": "5",
        "SLURM_NTASKS": "8",
        "SLURM_LOCALID": "1",
        "SLURM_JOB_ID": "123456",
        "SLURM_JOB_NODELIST": "gpu[03-04]",
        **extra,
    }


def test_slurm_layout_and_defaults():
    lay = slurm_layout(slurm_env(), gpus_per_node=4)
    assert (lay.rank, lay.world_size, lay.local_rank, lay.master_addr, lay.master_port) == (5, 8, 1, "gpu03", 29956)
    assert default_master_port(123456) == 29500 + 456 and default_master_port(None) == 29500
    # the step's own node list wins over the job's (a step on some of the job's nodes)
    assert slurm_layout(slurm_env(SLURM_STEP_NODELIST="gpu04"), 4).master_addr == "gpu04"
    # set MASTER_ADDR / MASTER_PORT are kept
    lay = slurm_layout(slurm_env(MASTER_ADDR="10.0.0.7", MASTER_PORT="12345"), 4)
    assert (lay.master_addr, lay.master_port) == ("10.0.0.7", 12345)
    # no SLURM_LOCALID: rank % GPUs per node (the official MiniGPT-4/LAVIS rule); no job id: port 29500
    env = slurm_env()
    del env["SLURM_LOCALID"], env["SLURM_JOB_ID"]
    lay = slurm_layout(env, gpus_per_node=4)
    assert (lay.local_rank, lay.master_port) == (1, 29500)
    assert slurm_layout(env, gpus_per_node=0).local_rank == 0  # CPU only
    # one task needs no address
    assert slurm_layout({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}).master_addr == "127.0.0.1"


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"SLURM_NTASKS": "two"}, "SLURM_NTASKS='two': expected an integer"),
        ({"SLURM_NTASKS": "0"}, "SLURM_NTASKS='0': expected an integer >= 1"),
        ({"SLURM_PROCID": "8"}, "SLURM_PROCID=8 is not below SLURM_NTASKS=8"),
        ({"SLURM_LOCALID": "-1"}, "SLURM_LOCALID='-1': expected an integer >= 0"),
        ({"SLURM_JOB_ID": "12x"}, "SLURM_JOB_ID='12x'"),
        ({"MASTER_PORT": "70000"}, "MASTER_PORT=70000: not a TCP port"),
        ({"SLURM_JOB_NODELIST": "gpu[1-"}, "SLURM_JOB_NODELIST='gpu\\[1-': '\\[' without '\\]'"),
        ({"SLURM_JOB_NODELIST": ""}, "neither MASTER_ADDR nor SLURM_STEP_NODELIST / SLURM_JOB_NODELIST"),
    ],
)
def test_malformed_slurm_variables(extra, message, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)  # no scontrol to second-guess the parser
    with pytest.raises(ValueError, match=message):
        slurm_layout(slurm_env(**extra), 4)


def test_which_launcher_wins():
    torchrun = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}
    launch = du.read_launch_env({**slurm_env(), **torchrun}, gpus_per_node=2)  # srun torchrun ...: torchrun's
    assert (launch.rank, launch.world_size, launch.local_rank, launch.launcher, launch.exports) == (3, 4, 1, "torchrun", {})
    launch = du.read_launch_env(slurm_env(), gpus_per_node=2)
    assert (launch.rank, launch.world_size, launch.local_rank, launch.launcher) == (5, 8, 1, "slurm")
    assert launch.exports == {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu03", "MASTER_PORT": "29956"}
    assert du.read_launch_env({**slurm_env(), du.IGNORE_SLURM_ENV: "1"}).launcher == "none"
    assert du.read_launch_env({"SLURM_JOB_ID": "7", "SLURM_JOB_NODELIST": "a[1-2]"}).launcher == "none"  # no task variables
    assert du.read_launch_env({}) == du.LaunchEnv(0, 1, 0, "none", {})
    assert not du.DistInfo(8, 16, 0, torch.device("cpu"), "torchrun").is_main  # first process of machine 2: no writer
    with pytest.raises(ValueError, match="RANK=4 is not below WORLD_SIZE=4"):
        du.read_launch_env({**torchrun, "RANK": "4"})
    with pytest.raises(ValueError, match="WORLD_SIZE='x': expected an integer"):
        du.read_launch_env({**torchrun, "WORLD_SIZE": "x"})


@pytest.fixture()
def bare_env(monkeypatch):
    """No launcher variables; whatever init_distributed exports is removed afterwards."""
    for key in (*LAUNCH_VARS, *(k for k in os.environ if k.startswith("SLURM_")), du.IGNORE_SLURM_ENV):
        monkeypatch.setenv(key, "")  # recorded, so the teardown restores the original state
        monkeypatch.delenv(key)
    return monkeypatch


def test_init_distributed_exports_the_slurm_layout(bare_env):
    bare_env.setenv("SLURM_PROCID", "0")
    bare_env.setenv("SLURM_NTASKS", "1")
    bare_env.setenv("SLURM_LOCALID", "0")
    bare_env.setenv("SLURM_JOB_ID", "4242")
    info = du.init_distributed("cpu")
    assert (info.rank, info.world_size, info.local_rank, info.launcher, info.is_main) == (0, 1, 0, "slurm", True)
    assert not du.is_dist() and info.device == torch.device("cpu")
    assert {k: os.environ[k] for k in LAUNCH_VARS} == {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29742",
    }


def test_bad_slurm_variable_is_one_error_line(bare_env, tiny_stack, synthetic_flickr, tmp_path, capsys):
    from minigpt4 import cli

    bare_env.setenv("SLURM_PROCID", "0")
    bare_env.setenv("SLURM_NTASKS", "2 tasks")
    assert cli.train(["--cfg-path", str(TINY_CFG), "--options", *options(tiny_stack, synthetic_flickr, tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "error: environment variable SLURM_NTASKS='2 tasks': expected an integer"
    assert not (tmp_path / "minigpt4_flickr_tiny").exists()


# ---- end to end: two "nodes" on localhost ------------------------------------------------
def free_ports(n: int) -> list[int]:
    """``n`` different ports that were free a moment ago (all bound at once, so never the same twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def node_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in train_env().items() if not k.startswith("SLURM_") and k not in (*LAUNCH_VARS, du.IGNORE_SLURM_ENV)}
    return {**env, "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep), **(extra or {})}


def run_nodes(phase: str, commands: list[tuple[list, dict, Path, int]], timeout: int = 300) -> list[str]:
    """Start every (command, env, cwd, umask) at once; wait for all; their outputs (stdout+stderr),
    also kept in ``<cwd>.<phase>.log`` beside each working directory."""
    procs = []
    for cmd, env, cwd, umask in commands:
        cwd.mkdir(parents=True, exist_ok=True)
        log = open(cwd.parent / f"{cwd.name}.{phase}.log", "w+")  # closed below
        procs.append((subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, umask=umask), log))
    outputs = []
    try:
        for proc, _ in procs:
            proc.wait(timeout=timeout)
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.seek(0)
            outputs.append(log.read())
            log.close()
    for (cmd, *_), (proc, _), out in zip(commands, procs, outputs):
        assert proc.returncode == 0, f"{cmd[:6]} exited {proc.returncode}:\n{out[-5000:]}"
    return outputs


def torchrun_nodes(args: list, tmp: Path, port: int, launcher: tuple = ("torch.distributed.run",)) -> list[tuple[list, dict, Path, int]]:
    """Node 0 and node 1 of ``--nnodes 2`` (one process each); node 1 writes with umask 077."""
    return [
        (
            [
                sys.executable,
                "-m",
                *launcher,
                "--nnodes",
                "2",
                "--node-rank",
                str(node),
                "--nproc-per-node",
                "1",
                "--rdzv-backend",
                "static",
                "--rdzv-endpoint",
                f"127.0.0.1:{port}",
                *args,
            ],
            node_env(),
            tmp / f"node{node}",
            0o022 if node == 0 else 0o077,
        )
        for node in (0, 1)
    ]


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
def test_two_nodes_train_and_evaluate_like_two_slurm_tasks(standin_eval, tmp_path):
    """torchrun --nnodes 2 (static rendezvous on 127.0.0.1) and a 2-task SLURM step each train 2 epochs
    of the stand-ins and evaluate the run folder: one run folder, every file written by global rank 0
    (none in the nodes' own working directories), world size 2 in the logs, checkpoints and
    metrics; both jobs' weights, losses, captions and scores are identical."""
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

    ports = free_ports(2)
    outs = run_nodes(
        "eval",
        torchrun_nodes(evaluate_args(torch_run), torch_tmp, ports[0], ("minigpt4.cli", "torchrun"))
        + slurm_tasks(evaluate_args(slurm_run), slurm_tmp, ports[1]),
    )
    assert "3 checkpoint(s) on 10 test images, 2 rank(s)" in outs[0] and "wrote " in outs[0] and "wrote " not in outs[1]

    for cwd in ("torchrun/node0", "torchrun/node1", "slurm/task0", "slurm/task1"):
        assert not any((tmp_path / cwd).iterdir()), cwd  # nothing relative to a node's working directory
    for run_dir in (torch_run, slurm_run):
        assert_written_by_rank0_only(run_dir)
        assert {p.name for p in run_dir.iterdir()} == {
            "config.yaml",
            "log.txt",
            "checkpoint_0.pth",
            "checkpoint_1.pth",
            "checkpoint_latest.pth",
            "eval",
        }
        assert {p.name for p in (run_dir / "eval").iterdir()} == {
            "pretrained",
            "checkpoint_0",
            "checkpoint_1",
            "summary.csv",
            "summary.md",
            "summary.png",
            "report.html",
        }
        ckpt = torch.load(run_dir / "checkpoint_1.pth", weights_only=True)
        assert ckpt["world_size"] == 2 and len(ckpt["rank_states"]) == 2

    records = [[json.loads(line) for line in (r / "log.txt").read_text().splitlines()] for r in (torch_run, slurm_run)]
    assert [r["epoch"] for r in records[0]] == [0, 1] and records[0][1]["samples"] == 2 * 2 * 2
    assert [r["loss"] for r in records[0]] == [r["loss"] for r in records[1]]
    for epoch in (0, 1):
        a, b = (torch.load(r / f"checkpoint_{epoch}.pth", weights_only=True)["model"] for r in (torch_run, slurm_run))
        assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    for name in ("pretrained", "checkpoint_0", "checkpoint_1"):
        (caps_a, m_a), (caps_b, m_b) = (
            (json.loads((r / "eval" / name / f).read_text()) for f in ("captions.json", "metrics.json")) for r in (torch_run, slurm_run)
        )
        assert caps_a == caps_b and len(caps_a) == 10 and m_a["scores"] == m_b["scores"], name
        assert m_a["world_size"] == m_b["world_size"] == 2 and m_a["scores"]["Bleu_1"] > 0
