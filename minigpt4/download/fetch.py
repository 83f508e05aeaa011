"""Fetching one artefact: plain URLs resumably (``Range``, a ``.part`` file renamed when complete and
verified), Hugging Face repos through ``huggingface_hub`` at the manifest's revision, zips unpacked
whole or not at all. A bad download never stays under the final name."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from minigpt4.errors import UserError

from .manifest import Artefact

CHUNK = 1 << 20
UNPACKED = ".unpacked"  # marks a folder whose zip was extracted completely


class DownloadError(UserError, OSError):
    """An artefact that could not be fetched or verified; the message names it and what to do."""


def part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def sha256_of(path: Path, start: hashlib._Hash | None = None) -> str:
    h = start or hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def is_present(a: Artefact, out: Path) -> bool:
    """Already fetched: the file with the manifest's size, or a repo folder with every file (unpacked)."""
    target = out / a.file
    if a.hf is not None:
        done = all((target / f).is_file() for f in a.hf.files)
        return done and (a.unpack is None or (target / UNPACKED).is_file())
    return target.is_file() and (a.size is None or target.stat().st_size == a.size)


def fetch_url(a: Artefact, out: Path) -> Path:
    """Download ``a.url`` to ``out/a.file``, resuming a ``.part`` left by an earlier run."""
    target = out / a.file
    target.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(target)
    have = part.stat().st_size if part.is_file() else 0
    if a.size is not None and have > a.size:
        part.unlink()
        have = 0
    request = urllib.request.Request(a.url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)  # noqa: S310 (the manifest's own URLs)
    except urllib.error.HTTPError as e:
        if e.code == 416 and a.size is not None and have == a.size:  # the .part is already whole
            return _finish(a, part, target)
        raise DownloadError(f"{a.name} ({a.file}): {a.url} answered HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise DownloadError(f"{a.name} ({a.file}): cannot reach {a.url} ({e}); rerun to resume") from None
    with response:
        resumed = have and response.status == 206
        first = response.read(min(CHUNK, 512))
        if "text/html" in response.headers.get("Content-Type", "") or _is_html(first):
            raise DownloadError(
                f"{a.name} ({a.file}): {a.url} returned an HTML page, not the file (a sign-in, warning or error "
                f"page); nothing was kept. {_BY_HAND.format(target=target)}"
            )
        total = (a.size or 0) or None
        with (
            open(part, "ab" if resumed else "wb") as f,
            tqdm(total=total, initial=have if resumed else 0, unit="B", unit_scale=True, desc=a.file) as bar,
        ):
            try:
                while first:
                    f.write(first)
                    bar.update(len(first))
                    first = response.read(CHUNK)
            except (http.client.IncompleteRead, OSError) as e:
                f.flush()
                raise DownloadError(
                    f"{a.name} ({a.file}): the download stopped after {part.stat().st_size:,} bytes ({type(e).__name__}); "
                    f"rerun to resume from there ({part} is kept)"
                ) from None
    return _finish(a, part, target)


def _finish(a: Artefact, part: Path, target: Path) -> Path:
    size = part.stat().st_size
    if a.size is not None and size > a.size:
        part.unlink()
        raise DownloadError(f"{a.name} ({a.file}): got {size:,} bytes, the manifest says {a.size:,}; the download was deleted")
    if a.size is not None and size != a.size:
        raise DownloadError(
            f"{a.name} ({a.file}): the download stopped after {size:,} of {a.size:,} bytes; rerun to resume ({part} is kept)"
        )
    if a.sha256 is not None:
        got = sha256_of(part)
        if got != a.sha256:
            part.unlink()
            raise DownloadError(f"{a.name} ({a.file}): sha256 {got} is not the manifest's {a.sha256}; the download was deleted")
    os.replace(part, target)
    return target


def fetch_drive(a: Artefact, out: Path) -> Path:
    """A Google Drive file through gdown (its confirm step, its resume), then verified as a URL's is.
    ``MINIGPT4_DRIVE_URL`` (``{id}`` replaced) points it elsewhere, as HF_ENDPOINT does for the Hub."""
    import gdown

    target = out / a.file
    target.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(target)
    url = os.environ.get("MINIGPT4_DRIVE_URL")
    try:
        gdown.download(
            url=url.format(id=a.gdrive) if url else None, id=None if url else a.gdrive, output=str(part), resume=True, quiet=False
        )
    except Exception as e:  # noqa: BLE001 (gdown raises several kinds; each means no file)
        raise DownloadError(
            f"{a.name} ({a.file}): Google Drive did not give the file ({type(e).__name__}: {e}); rerun later, or "
            f"download https://drive.google.com/uc?id={a.gdrive} in a browser and put it at {target}"
        ) from None
    with open(part, "rb") as f:
        head = f.read(512)
    if _is_html(head):
        part.unlink()
        raise DownloadError(
            f"{a.name} ({a.file}): Google Drive returned an HTML page, not the file; nothing was kept. {_BY_HAND.format(target=target)}"
        )
    return _finish(a, part, target)


def _is_html(head: bytes) -> bool:
    return head.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html"))


_BY_HAND = "Download it by hand in a browser and put it at {target}"


def fetch_hf(a: Artefact, out: Path, token: str | None = None) -> Path:
    """The repo's files at the manifest's revision into ``out/a.file`` (``HF_ENDPOINT`` is honoured)."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    assert a.hf is not None
    folder = out / a.file
    if constants.HF_HUB_OFFLINE and not all((folder / f).is_file() for f in a.hf.files):
        raise DownloadError(f"{a.name}: HF_HUB_OFFLINE is set, so {a.hf.repo} cannot be fetched: unset it (or fetch on a machine online)")
    for name in a.hf.files:
        if (folder / name).is_file():
            continue
        try:
            hf_hub_download(
                a.hf.repo,
                name,
                repo_type=a.hf.type,
                revision=a.hf.revision,
                local_dir=folder,
                endpoint=os.environ.get("HF_ENDPOINT") or None,
                token=token,
            )
        except GatedRepoError:
            raise DownloadError(
                f"{a.name}: {a.hf.repo} is gated: accept its licence at https://huggingface.co/{a.hf.repo} with "
                "your account, then log in (`hf auth login`) or set HF_TOKEN, and rerun"
            ) from None
        except RepositoryNotFoundError:
            raise DownloadError(f"{a.name}: {a.hf.repo} not found (or private: log in with `hf auth login` or set HF_TOKEN)") from None
        except (HfHubHTTPError, OSError) as e:
            raise DownloadError(f"{a.name}: {name} of {a.hf.repo}@{a.hf.revision}: {e}; rerun to go on") from None
    if a.unpack:
        unpack(folder / a.unpack, folder)
    return folder


def unpack(archive: Path, folder: Path) -> None:
    """Extract ``archive`` into ``folder`` through a temporary folder: all of it or nothing."""
    tmp = folder / ".unpacking"
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(archive) as z:
        for member in z.infolist():
            name = Path(member.filename)
            if name.is_absolute() or ".." in name.parts:
                raise DownloadError(f"{archive}: unsafe path in the archive: {member.filename}")
        z.extractall(tmp)
    for child in tmp.iterdir():
        dest = folder / child.name
        if dest.exists():
            shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
        os.replace(child, dest)
    tmp.rmdir()
    (folder / UNPACKED).write_text(archive.name + "\n")
