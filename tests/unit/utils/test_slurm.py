"""Several machines, the units: SLURM's task variables (``srun python train.py``: node lists, ranks,
defaults, errors) and which launcher wins. Two "nodes" on localhost end to end: tests/e2e/test_multinode.py."""

from __future__ import annotations

import os

import pytest
import torch

from minigpt4.utils import dist
from minigpt4.utils.slurm import LaunchEnvError, default_master_port, expand_nodelist, first_host, slurm_layout
from tests.helpers.paths import REPO, TINY_CFG
from tests.helpers.training import options

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
    launch = dist.read_launch_env({**slurm_env(), **torchrun}, gpus_per_node=2)  # srun torchrun ...: torchrun's
    assert (launch.rank, launch.world_size, launch.local_rank, launch.launcher, launch.exports) == (3, 4, 1, "torchrun", {})
    launch = dist.read_launch_env(slurm_env(), gpus_per_node=2)
    assert (launch.rank, launch.world_size, launch.local_rank, launch.launcher) == (5, 8, 1, "slurm")
    assert launch.exports == {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu03", "MASTER_PORT": "29956"}
    assert dist.read_launch_env({**slurm_env(), dist.IGNORE_SLURM_ENV: "1"}).launcher == "none"
    assert dist.read_launch_env({"SLURM_JOB_ID": "7", "SLURM_JOB_NODELIST": "a[1-2]"}).launcher == "none"  # no task variables
    assert dist.read_launch_env({}) == dist.LaunchEnv(0, 1, 0, "none", {})
    assert not dist.DistInfo(8, 16, 0, torch.device("cpu"), "torchrun").is_main  # first process of machine 2: no writer
    with pytest.raises(ValueError, match="RANK=4 is not below WORLD_SIZE=4"):
        dist.read_launch_env({**torchrun, "RANK": "4"})
    with pytest.raises(ValueError, match="WORLD_SIZE='x': expected an integer"):
        dist.read_launch_env({**torchrun, "WORLD_SIZE": "x"})


@pytest.fixture()
def bare_env(monkeypatch):
    """No launcher variables; whatever init_distributed exports is removed afterwards."""
    for key in (*LAUNCH_VARS, *(k for k in os.environ if k.startswith("SLURM_")), dist.IGNORE_SLURM_ENV):
        monkeypatch.setenv(key, "")  # recorded, so the teardown restores the original state
        monkeypatch.delenv(key)
    return monkeypatch


def test_init_distributed_exports_the_slurm_layout(bare_env):
    bare_env.setenv("SLURM_PROCID", "0")
    bare_env.setenv("SLURM_NTASKS", "1")
    bare_env.setenv("SLURM_LOCALID", "0")
    bare_env.setenv("SLURM_JOB_ID", "4242")
    info = dist.init_distributed("cpu")
    assert (info.rank, info.world_size, info.local_rank, info.launcher, info.is_main) == (0, 1, 0, "slurm", True)
    assert not dist.is_dist() and info.device == torch.device("cpu")
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
