"""A disk that fills up while a checkpoint is written: one ``error:`` line naming the file and the space
it needs, nothing half-written, the earlier checkpoints intact, and ``--resume auto`` goes on once
space is freed. The run folder lives on a small tmpfs mounted in a private mount namespace
(``unshare``), so the disk really is full; the test is skipped where unprivileged namespaces are off."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys

import pytest

from tests.helpers.paths import REPO
from tests.helpers.training import options, run_train, train_cmd, train_env

pytestmark = pytest.mark.slow


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _namespaces_work(), reason="unshare --user --mount is not permitted here (needed to mount a small tmpfs)")
def test_a_full_disk_stops_with_one_error_line_and_resume_goes_on_once_space_is_freed(tiny_stack, synthetic_flickr, tmp_path):
    disk, logs = tmp_path / "disk", tmp_path / "logs"
    disk.mkdir()
    logs.mkdir()
    opts = options(tiny_stack, synthetic_flickr, disk / "out", max_epoch=2, iters_per_epoch=4, batch_size_train=2)
    opts = [o if not o.startswith("run.feature_cache=") else f"run.feature_cache={tmp_path / 'cache'}" for o in opts]
    run_train([*opts, "run.stop_after_epoch=0"])  # checkpoint_0, written in this process to a normal folder
    train = shlex.join(train_cmd(opts))
    leave_16k = f"import shutil; f = shutil.disk_usage('{disk}').free; open('{disk}/ballast', 'wb').write(bytes(f - 16384))"
    fill = f"{shlex.quote(sys.executable)} -c {shlex.quote(leave_16k)}"
    script = f"""
        set -u
        cd {shlex.quote(str(REPO))}
        cp -r {disk}/out {tmp_path}/first
        mount -t tmpfs -o size=4m tmpfs {disk}
        cp -r {tmp_path}/first {disk}/out
        {fill}
        {train} --resume auto > {logs}/2.txt 2>&1; echo $? > {logs}/rc2
        cp -r {disk}/out {logs}/after_full
        rm {disk}/ballast
        {train} --resume auto > {logs}/3.txt 2>&1; echo $? > {logs}/rc3
        cp -r {disk}/out {logs}/after_freed
    """
    subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "bash", "-c", script], env=train_env(), timeout=300, check=True)
    rc = [int((logs / f"rc{i}").read_text()) for i in (2, 3)]
    full = (logs / "2.txt").read_text()
    assert rc == [2, 0], (rc, full[-3000:])
    (run_dir,) = (logs / "after_full" / "minigpt4_flickr_tiny").iterdir()
    errors = [line for line in full.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in full, full[-3000:]
    assert errors[0].startswith(
        f"error: cannot write {disk}/out/minigpt4_flickr_tiny/{run_dir.name}/checkpoint_1.pth: not enough free space; it needs "
    )
    assert (
        " are free on " in errors[0]
        and "(nothing was half-written); the earlier checkpoints are intact: free space, then continue with --resume auto" in errors[0]
    )
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoint_0.pth",
        "checkpoint_latest.pth",
        "config.resumed-" + sorted(p.name for p in run_dir.iterdir())[2][len("config.resumed-") :],
        "config.yaml",
        "log.txt",
    ]

    import torch

    assert torch.load(run_dir / "checkpoint_0.pth", weights_only=True)["epoch"] == 0  # intact
    (freed,) = (logs / "after_freed" / "minigpt4_flickr_tiny").iterdir()
    assert (freed / "checkpoint_1.pth").is_file() and "--resume auto: continuing from" in (logs / "3.txt").read_text()
    assert torch.load(freed / "checkpoint_1.pth", weights_only=True)["epoch"] == 1
