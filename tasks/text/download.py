"""Download stage of the text path: a corpus from a ``tfpipe.datasets`` plugin of KIND text_corpus.

Where the files come from, first found wins:

1. the plugin's ``user_files(options)``: the user's own file, read in place (no copy);
2. ``<mirror>/<name>/``, then the plugin's ``LOCAL_COPIES``, found by its ``locate()``:
   copied in, and checked against the plugin's pinned size and sha256;
3. the plugin's remote files (``remote(options)`` or ``REMOTE``): downloaded and checked.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import luigi

from plugins.datasets.api import TEXT, DataError, RemoteFile
from plugins.datasets.text import stem
from tasks import atomic
from tasks.content import cached_sha256
from tasks.dataset_task import DatasetTask
from tasks.download import fetch, mirror_path

logger = logging.getLogger(__name__)

USER_FILE_PLUGIN = "text_file"  # what a path or a URL given as the corpus means


def corpus_label(corpus: str, corpus_options: Mapping[str, Any] | None = None) -> str:
    """Readable name of a corpus for folder and run names: the plugin name (``nietzsche``), or
    for text_file the stem of its file or URL (``~/books/mine.txt`` -> ``mine``)."""
    path = (corpus_options or {}).get("path")
    if corpus == USER_FILE_PLUGIN and isinstance(path, str) and path.strip():
        return stem(path.strip())
    return corpus


def remote_files(plugin: ModuleType, options: Mapping[str, Any]) -> tuple[RemoteFile, ...]:
    hook = getattr(plugin, "remote", None)
    return tuple(hook(options)) if hook is not None else tuple(getattr(plugin, "REMOTE", ()))


@dataclass(frozen=True)
class Found:
    files: dict[str, Path]  # role -> file
    where: str  # "in place" or the folder they are in
    in_place: bool


def find_local(name: str, plugin: ModuleType, options: Mapping[str, Any],
               mirror: str | None) -> Found | None:
    """The user's own files, else the first complete copy in the mirror or LOCAL_COPIES."""
    user_files = getattr(plugin, "user_files", None)
    files = user_files(options) if user_files is not None else None
    if files:
        return Found({role: Path(path) for role, path in files.items()}, "in place", True)
    locate = getattr(plugin, "locate", None)
    if locate is None:
        return None
    folders = [Path(mirror) / name] if mirror else []
    folders += [Path(folder) for folder in getattr(plugin, "LOCAL_COPIES", ())]
    for folder in folders:
        files = locate(folder, options) if folder.is_dir() else None
        if files:
            return Found({role: Path(path) for role, path in files.items()}, str(folder), False)
    return None


def check_pins(name: str, files: Mapping[str, Path], remotes: tuple[RemoteFile, ...],
               hashes: Mapping[str, str]) -> None:
    """A local copy of a pinned file must be that file: same size and sha256."""
    pins = {remote.name: remote for remote in remotes}
    for role, path in files.items():
        remote = pins.get(path.name)
        if remote is None:
            continue
        size, problem = path.stat().st_size, None
        if remote.size is not None and size != remote.size:
            problem = f"{size} bytes, expected {remote.size}"
        elif remote.sha256 and hashes[role] != remote.sha256:
            problem = f"sha256 {hashes[role]}, expected {remote.sha256}"
        if problem:
            raise DataError(
                f"{path}: {problem} for dataset {name!r}: a truncated or different file. "
                f"Replace it with the file from {remote.urls[0]}, or delete it to download it")


class DownloadCorpus(DatasetTask):
    """Finds or downloads the files of a text corpus dataset plugin (see the module docstring).

    Writes the copied or downloaded files (none for a user's file, read in place) and
    records every file's path, size and sha256; the text is checked by decoding it.
    """

    stage = "download"
    KIND = TEXT
    OPTIONS_FLAG = "--corpus-options"
    corpus = luigi.Parameter(description="a tfpipe.datasets plugin of KIND text_corpus, e.g. "
                                         "nietzsche or text_file")
    corpus_options = luigi.DictParameter(description="options of that plugin, e.g. "
                                                     '{"path": "~/books/mine.txt"} for text_file')
    mirror = luigi.OptionalParameter(default=None, significant=False,
                                     description="folder with one sub-folder per dataset")

    def run_name(self) -> str:
        return corpus_label(self.corpus, self.corpus_options)

    # ----- the plugin ----------------------------------------------------
    def dataset_name(self) -> str:
        return self.corpus

    def given_options(self) -> Any:
        return self.corpus_options

    # ----- identity ------------------------------------------------------
    def hashes(self, files: Mapping[str, Path]) -> dict[str, str]:
        return {role: cached_sha256(path, self.hash_cache_file()) for role, path in files.items()}

    def fingerprint_components(self) -> dict[str, Any]:
        components = super().fingerprint_components()
        components["plugin"] = self.plugin_info().identity()
        options, plugin = self.options(), self.plugin()
        found = find_local(self.corpus, plugin, options, self.mirror)
        remotes = remote_files(plugin, options)
        if found:
            hashes = self.hashes(found.files)
            if not found.in_place:
                check_pins(self.corpus, found.files, remotes, hashes)
            # By content alone: a mirror copy and a download of the same file are one result.
            components["source"] = {"sha256": sorted(hashes.values())}
        elif remotes:
            components["source"] = {"sha256": sorted(remote.sha256 or "" for remote in remotes),
                                    "unpinned": sorted(remote.urls[0] for remote in remotes
                                                       if not remote.sha256)}
        else:
            raise DataError(
                f"dataset {self.corpus!r} has no copy here and nothing to download: put its files "
                f"in {mirror_path(self.mirror, self.corpus)}/ (the mirror folder is "
                "$TFPIPE_DATA_MIRROR, or data.mirror in your config)")
        return components

    def known_bytes(self) -> int | None:
        """Size of the corpus files: as recorded once downloaded, else of the local copy; None
        when there is none yet (a URL or a dataset still to download)."""
        if self.complete():
            return int(self.manifest()["record"]["bytes"])
        found = find_local(self.corpus, self.plugin(), self.options(), self.mirror)
        return sum(path.stat().st_size for path in found.files.values()) if found else None

    def local_text(self) -> str | None:
        """The text of the local copy, decoded and checked by the plugin; None without one."""
        options, plugin = self.options(), self.plugin()
        found = find_local(self.corpus, plugin, options, self.mirror)
        return plugin.open_dataset(found.files, options).text if found else None

    # ----- work ----------------------------------------------------------
    def produce(self, folder: Path) -> dict[str, Any]:
        options, plugin = self.options(), self.plugin()
        found = find_local(self.corpus, plugin, options, self.mirror)
        if found and found.in_place:
            files, source = found.files, {role: str(path) for role, path in found.files.items()}
        elif found:
            files = {}
            for role, path in found.files.items():
                files[role] = folder / path.name
                if files[role].exists():
                    raise DataError(f"dataset {self.corpus!r}: two files named {path.name} in "
                                    f"{found.where}; its plugin must give each role its own file")
                atomic.write_bytes(files[role], path.read_bytes())
            source = found.where
        else:
            files, source = self.download(folder, plugin, options)
        hashes = self.hashes(files)
        expected = self.components()["source"]["sha256"]
        if found and sorted(hashes.values()) != expected:
            changed = ", ".join(str(path) for path in found.files.values())
            raise DataError(f"{changed} changed while this task ran; rerun to use the new content")
        corpus = plugin.open_dataset(files, options)  # the check: it decodes as text
        text = getattr(corpus, "text", None)
        if not isinstance(text, str) or not text:
            raise DataError(f"dataset {self.corpus!r}: open_dataset gave no text from "
                            f"{source}; a text_corpus plugin returns a non-empty TextCorpus")
        in_place = bool(found and found.in_place)
        record_files = {
            role: {"path": str(path if in_place else path.resolve().relative_to(folder.resolve())),
                   "in_place": in_place, "bytes": path.stat().st_size, "sha256": hashes[role]}
            for role, path in sorted(files.items())
        }
        logger.info("%s: %d characters from %s", self.run_name(), len(text), source)
        return {"dataset": self.corpus, "options": options, "source": source, "files": record_files,
                "bytes": sum(entry["bytes"] for entry in record_files.values()),
                "characters": len(text)}

    def download(self, folder: Path, plugin: ModuleType,
                 options: Mapping[str, Any]) -> tuple[dict[str, Path], dict[str, str]]:
        source = {}
        remotes = remote_files(plugin, options)
        for remote in remotes:
            where = mirror_path(self.mirror, self.corpus, remote.name)
            others = tuple(other.name for other in remotes if other.name != remote.name)
            source[remote.name] = fetch(remote, folder / remote.name, mirror_path=where,
                                        beside=others)
        files = plugin.locate(folder, options)
        if not files:
            raise DataError(f"dataset {self.corpus!r}: its locate() finds none of the files just "
                            f"downloaded into {folder}; fix the plugin")
        return {role: Path(path) for role, path in files.items()}, source

    # ----- for the stages downstream --------------------------------------
    def files(self) -> dict[str, Path]:
        """The corpus files this task recorded (run it first). Copies in this task's folder were
        checked with the folder (PipelineTask.verify_upstream); a user's file read in place is
        checked here (hash cached by stat)."""
        folder = self.folder()
        recorded = self.manifest()["record"]["files"]
        files = {}
        for role, entry in recorded.items():
            path = Path(entry["path"]) if entry["in_place"] else folder / entry["path"]
            if entry["in_place"]:
                try:
                    actual = cached_sha256(path, self.hash_cache_file())
                except OSError as exc:
                    raise DataError(f"{path}: cannot read the corpus ({exc.strerror}); rerun so "
                                    f"{self.get_task_family()} finds it again") from exc
                if actual != entry["sha256"]:
                    raise DataError(f"{path} changed since {folder} recorded it (sha256 {actual}, "
                                    f"recorded {entry['sha256']}); rerun to use the new content")
            files[role] = path
        return files
