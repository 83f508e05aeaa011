"""minigpt4-download against a server on 127.0.0.1: resume with Range, wrong hash and HTML pages
refused (nothing under the final name), --dry-run and a second run fetch nothing, Hugging Face repos
through HF_ENDPOINT (a gated one explained), Flickr30k unpacked, weights.yaml written and loadable."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
import yaml

from minigpt4.cli import download
from minigpt4.commands import prepare
from minigpt4.config import load_model_config
from minigpt4.download.manifest import BUILTIN, load_manifest, select
from minigpt4.errors import ConfigError
from tests.helpers.http_server import Files, serving
from tests.helpers.paths import DATA

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest(tmp_path: Path, *items: dict) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump({"artefacts": list(items)}))
    return path


def url_item(base: str, **extra) -> dict:
    return {
        "name": "vit",
        "file": "eva_vit_g.pth",
        "url": f"{base}/eva_vit_g.pth",
        "size": len(PAYLOAD),
        "sha256": sha(PAYLOAD),
        "key": "model.vit_ckpt",
        **extra,
    }


def fetch(tmp_path: Path, m: Path, *extra: str, variant: str = "vicuna-7b") -> int:
    return download(
        ["--variant", variant, "--out", str(tmp_path / "w"), "--manifest", str(m), "--only", "vit,qformer,llm,ckpt,flickr30k", *extra]
    )


def test_an_interrupted_download_resumes_with_range_and_ends_verified(tmp_path, capsys):
    files = Files({"/eva_vit_g.pth": PAYLOAD}, cut={"/eva_vit_g.pth": len(PAYLOAD) // 2})
    with serving(files) as base:
        m = manifest(tmp_path, url_item(base))
        assert fetch(tmp_path, m) == 2
        err = capsys.readouterr().err
        assert "error: vit (eva_vit_g.pth): the download stopped after" in err and "rerun to resume" in err
        target = tmp_path / "w" / "eva_vit_g.pth"
        part = target.with_name("eva_vit_g.pth.part")
        assert not target.exists() and 0 < part.stat().st_size < len(PAYLOAD)
        have = part.stat().st_size
        assert fetch(tmp_path, m) == 0
        assert files.requests[-1] == ("GET", "/eva_vit_g.pth", f"bytes={have}-")
        assert target.read_bytes() == PAYLOAD and not part.exists()
        n = len(files.requests)
        assert fetch(tmp_path, m) == 0 and len(files.requests) == n  # a second run fetches nothing
        assert fetch(tmp_path, m, "--dry-run") == 0 and len(files.requests) == n
        assert "present" in capsys.readouterr().out


def test_a_wrong_hash_and_an_html_page_fail_naming_the_artefact_and_keep_nothing(tmp_path, capsys):
    files = Files({"/eva_vit_g.pth": PAYLOAD, "/ckpt.pth": b"x" * 100}, html={"/drive.pth"})
    with serving(files) as base:
        wrong = manifest(tmp_path, url_item(base, sha256="0" * 64))
        assert fetch(tmp_path, wrong) == 2
        assert (
            f"error: vit (eva_vit_g.pth): sha256 {sha(PAYLOAD)} is not the manifest's {'0' * 64}; the download was deleted"
            in capsys.readouterr().err
        )
        assert list((tmp_path / "w").iterdir()) == []
        html = manifest(tmp_path, {"name": "ckpt", "file": "prerained_minigpt4_7b.pth", "url": f"{base}/drive.pth", "key": "model.ckpt"})
        assert fetch(tmp_path, html) == 2
        err = capsys.readouterr().err
        assert "error: ckpt (prerained_minigpt4_7b.pth): " in err and "returned an HTML page, not the file" in err
        assert list((tmp_path / "w").iterdir()) == []


def test_the_dry_run_lists_sizes_and_the_disk_needed_and_fetches_nothing(tmp_path, capsys):
    files = Files({"/eva_vit_g.pth": PAYLOAD})
    with serving(files) as base:
        assert fetch(tmp_path, manifest(tmp_path, url_item(base)), "--dry-run") == 0
    out = capsys.readouterr().out
    assert "eva_vit_g.pth" in out and "0.00 GB  missing" in out and "to fetch: 0.00 GB; free at" in out
    assert files.requests == [] and not (tmp_path / "w").exists()


def hub_at(monkeypatch, base: str, tmp_path: Path) -> None:
    """huggingface_hub talking to the test server (the suite runs with HF_HUB_OFFLINE=1, read at import)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", base)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub_cache"))


def hf_files(repo: str, kind: str, content: dict[str, bytes]) -> dict[str, bytes]:
    prefix = "/datasets" if kind == "dataset" else ""
    return {f"{prefix}/{repo}/resolve/{'a' * 40}/{name}": data for name, data in content.items()}


def test_hugging_face_repos_and_flickr30k_then_weights_yaml(tmp_path, tiny_stack, monkeypatch, capsys):
    llm = Path(tiny_stack["llama_model"])
    llm_files = {p.name: p.read_bytes() for p in llm.iterdir() if p.is_file()}
    images, rows = io.BytesIO(), ["raw,sentids,split,filename,img_id"]
    photo = (DATA / "flickr_1000268201.jpg").read_bytes()
    with zipfile.ZipFile(images, "w") as z:
        for i, split in enumerate(("train", "val", "test")):
            z.writestr(f"flickr30k-images/{i}.jpg", photo)
            rows.append(f'"[""a dog {i}"", ""a photo""]","[{i}]",{split},{i}.jpg,{i}')
    flickr = {"flickr_annotations_30k.csv": "\n".join(rows).encode() + b"\n", "flickr30k-images.zip": images.getvalue()}
    vit = Path(tiny_stack["vit_ckpt"]).read_bytes()
    files = Files({**hf_files("Org/llm", "model", llm_files), **hf_files("nlphuji/flickr30k", "dataset", flickr), "/eva_vit_g.pth": vit})
    with serving(files) as base:
        hub_at(monkeypatch, base, tmp_path)
        m = manifest(
            tmp_path,
            {
                "name": "vit",
                "file": "eva_vit_g.pth",
                "url": f"{base}/eva_vit_g.pth",
                "size": len(vit),
                "sha256": sha(vit),
                "key": "model.vit_ckpt",
            },
            {
                "name": "llm",
                "file": "vicuna-7b-v0",
                "hf": {"repo": "Org/llm", "revision": "a" * 40, "files": sorted(llm_files)},
                "key": "model.llama_model",
            },
            {
                "name": "flickr30k",
                "file": "flickr30k",
                "hf": {"repo": "nlphuji/flickr30k", "revision": "a" * 40, "type": "dataset", "files": sorted(flickr)},
                "unpack": "flickr30k-images.zip",
            },
        )
        assert fetch(tmp_path, m) == 0
        out = capsys.readouterr().out
        n = len(files.requests)
        assert fetch(tmp_path, m) == 0 and len(files.requests) == n  # a second run fetches nothing
    w = tmp_path / "w"
    assert {p.name: p.read_bytes() for p in (w / "vicuna-7b-v0").iterdir() if p.is_file()} == llm_files
    assert (w / "flickr30k" / "flickr30k-images" / "2.jpg").read_bytes() == photo
    assert f"python prepare_flickr30k.py --root {w / 'flickr30k'}" in out
    assert prepare.main(["--root", str(w / "flickr30k")]) in (0, None)  # the layout prepare_flickr30k.py expects
    assert all((w / "flickr30k" / f"flickr30k_{split}.json").is_file() for split in ("train", "val", "test"))
    model = load_model_config(w / "weights.yaml")  # as --cfg-path reads it
    assert (model.model_type, model.llama_model, model.vit_ckpt) == (
        "vicuna0",
        str((w / "vicuna-7b-v0").resolve()),
        str((w / "eva_vit_g.pth").resolve()),
    )
    assert f"--options model.vit_ckpt={(w / 'eva_vit_g.pth').resolve()} model.llama_model=" in out


def test_a_gated_repo_says_what_to_do(tmp_path, monkeypatch, capsys):
    with serving(Files(gated={"/meta-llama/"})) as base:
        hub_at(monkeypatch, base, tmp_path)
        m = manifest(
            tmp_path,
            {
                "name": "llm",
                "file": "Llama-2-7b-chat-hf",
                "hf": {"repo": "meta-llama/Llama-2-7b-chat-hf", "revision": "a" * 40, "files": ["config.json"], "gated": True},
            },
        )
        assert fetch(tmp_path, m, variant="llama2-7b") == 2
    err = capsys.readouterr().err
    assert (
        "error: llm: meta-llama/Llama-2-7b-chat-hf is gated: accept its licence at https://huggingface.co/meta-llama/Llama-2-7b-chat-hf"
        in err
    )
    assert "HF_TOKEN" in err and not (tmp_path / "w" / "Llama-2-7b-chat-hf" / "config.json").exists()


def test_the_builtin_manifest_covers_every_variant():
    artefacts = load_manifest(BUILTIN)
    for variant in ("vicuna-7b", "vicuna-13b", "llama2-7b"):
        names = sorted(a.name for a in select(artefacts, variant, None))
        assert names == sorted(["vit", "llm", "ckpt", "flickr30k"] + (["qformer"] if variant != "llama2-7b" else [])), variant
    vit = next(a for a in artefacts if a.name == "vit")
    assert (vit.size, vit.sha256[:8]) == (2025249237, "99d2bb36")


def test_a_bad_manifest_names_the_item_and_field(tmp_path):
    bad = manifest(
        tmp_path, {"name": "vit", "file": "../x.pth", "url": "http://x"}, {"name": "llm", "file": "f", "sha256": "xyz", "url": "u"}
    )
    with pytest.raises(ConfigError) as e:
        load_manifest(bad)
    assert "artefacts[0] (vit): file '../x.pth' must be a relative path inside --out" in str(e.value)
    assert "artefacts[1] (llm): sha256 'xyz': expected 64 lowercase hex digits" in str(e.value)


def test_google_drive_files_come_through_gdown_and_are_verified(tmp_path, monkeypatch, capsys):
    ckpt = b"minigpt4 checkpoint bytes" * 1000
    files = Files({"/uc/ok": ckpt}, html={"/uc/warning"})
    with serving(files) as base:
        monkeypatch.setenv("MINIGPT4_DRIVE_URL", base + "/uc/{id}")  # as gdown would ask drive.google.com
        item = {"name": "ckpt", "file": "prerained_minigpt4_7b.pth", "size": len(ckpt), "sha256": sha(ckpt), "key": "model.ckpt"}
        assert fetch(tmp_path, manifest(tmp_path, {**item, "gdrive": "ok"})) == 0
        assert (tmp_path / "w" / "prerained_minigpt4_7b.pth").read_bytes() == ckpt
        assert ("GET", "/uc/ok", None) in files.requests
        capsys.readouterr()
        assert fetch(tmp_path, manifest(tmp_path, {**item, "file": "other.pth", "gdrive": "warning"})) == 2
    err = capsys.readouterr().err
    assert "error: ckpt (other.pth): Google Drive returned an HTML page, not the file; nothing was kept" in err
    assert not (tmp_path / "w" / "other.pth").exists() and not (tmp_path / "w" / "other.pth.part").exists()


def test_a_file_larger_than_the_manifest_says_is_deleted(tmp_path, capsys):
    with serving(Files({"/eva_vit_g.pth": PAYLOAD + b"extra"})) as base:
        assert fetch(tmp_path, manifest(tmp_path, url_item(base))) == 2
    assert f"got {len(PAYLOAD) + 5:,} bytes, the manifest says {len(PAYLOAD):,}; the download was deleted" in capsys.readouterr().err
    assert list((tmp_path / "w").iterdir()) == []


def test_readme_lists_what_the_manifest_fetches():
    from tests.helpers.paths import REPO

    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("| `--only` |") : readme.index("| file | `model_type` |")]
    for a in load_manifest(BUILTIN):
        assert f"`{a.name}`" in table
        if a.size is not None and a.hf is None:
            assert f"{a.size / 1e9:.2f}" in table, (a.name, a.file)
        if a.hf is not None:
            assert a.hf.repo.split("/")[0] in table, a.hf.repo
