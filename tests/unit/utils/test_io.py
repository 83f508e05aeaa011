"""Atomic writes: a full disk gives a StorageError naming the file and leaves nothing half-written."""

import pytest


def test_a_write_that_runs_out_of_space_names_the_file_and_leaves_nothing(tmp_path):
    import errno

    from minigpt4.errors import StorageError
    from minigpt4.utils.io import write_or_explain

    def write(tmp):
        tmp.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / "checkpoint_3.pth"
    target.write_bytes(b"old")
    with pytest.raises(StorageError) as e:
        write_or_explain(target, write, need=1000)
    assert str(e.value).startswith(f"cannot write {target}: the disk filled up while writing; it needs 1,000 bytes and ")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_3.pth"]
    with pytest.raises(StorageError, match="not enough free space; it needs 1,048,576.0 GiB"):
        write_or_explain(tmp_path / "huge.pth", write, need=2**50)
    assert not (tmp_path / "huge.pth").exists()


def test_tensor_bytes_counts_each_storage_once():
    import torch

    from minigpt4.utils.io import tensor_bytes

    t = torch.zeros(10)
    assert tensor_bytes({"a": t, "b": [t, t[:5]], "c": (torch.ones(2, dtype=torch.float64), "x")}) == 40 + 16
