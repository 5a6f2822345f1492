"""Data stages of the text path: find or download a corpus, then encode its characters."""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import luigi
from luigi.util import requires

from plugins.datasets.api import RemoteFile
from plugins.errors import TfpipeError
from tasks import atomic
from tasks.base import PipelineTask, RequiredBoolParameter
from tasks.content import cached_sha256
from tasks.download import fetch, sha256_of

logger = logging.getLogger(__name__)

# No checksum is published for these: the size is pinned, the content is checked by
# decoding it, and its sha256 is recorded in the manifest.
TEXT_CORPORA = {
    "nietzsche": RemoteFile("nietzsche.txt", ("https://s3.amazonaws.com/text-datasets/nietzsche.txt",),
                            None, 600918),
}


def is_url(corpus: str) -> bool:
    return corpus.startswith(("http://", "https://"))


def corpus_source(corpus: str, options: Mapping[str, Any] | None = None) -> str:
    """What to read: the text_file plugin's `path` option, else the corpus name itself."""
    if corpus == "text_file" and options and options.get("path"):
        return str(options["path"])
    return corpus


def corpus_label(corpus: str, options: Mapping[str, Any] | None = None) -> str:
    """A short readable name of a corpus (built-in name, file stem or URL stem)."""
    stem = corpus_source(corpus, options).rstrip("/").rsplit("/", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    return re.sub(r"[^A-Za-z0-9_-]+", "_", stem) or "corpus"


def corpus_candidates(corpus: str, mirror: str | None) -> list[Path]:
    """Local files that may hold the corpus, in the order they are tried."""
    if is_url(corpus):
        return []
    if corpus not in TEXT_CORPORA and ("/" in corpus or Path(corpus).suffix):
        return [Path(corpus).expanduser()]  # a user's own file
    name = TEXT_CORPORA[corpus].name if corpus in TEXT_CORPORA else f"{corpus}.txt"
    candidates = []
    if mirror:
        candidates += [Path(mirror) / corpus / name, Path(mirror) / name]
    return candidates


class DownloadCorpus(PipelineTask):
    """Reads a text corpus from a local file, the mirror folder or its URL.

    Writes ``corpus.txt`` (the bytes as found), checked to be non-empty UTF-8
    text (and, for built-in corpora, of the pinned size); records its sha256.
    """

    stage = "download"
    corpus = luigi.Parameter(description="a text_corpus dataset plugin, e.g. nietzsche or text_file")
    corpus_options = luigi.DictParameter(description="options of the dataset plugin (text_file: path)")
    mirror = luigi.OptionalParameter(default=None, significant=False,
                                     description="folder with one sub-folder per dataset")

    def run_name(self) -> str:
        return corpus_label(self.corpus, self.corpus_options)

    def source(self) -> str:
        return corpus_source(self.corpus, self.corpus_options)

    def local_file(self) -> Path | None:
        return next((path for path in corpus_candidates(self.source(), self.mirror) if path.is_file()), None)

    def fingerprint_components(self) -> dict[str, Any]:
        components = super().fingerprint_components()
        local = self.local_file()
        if local:
            cache = Path(self.workspace) / ".cache" / "file-hashes.json"
            components["source"] = cached_sha256(local, cache)
        elif is_url(self.source()):
            components["source"] = self.source()
        elif self.source() in TEXT_CORPORA:
            remote = TEXT_CORPORA[self.source()]
            components["source"] = {"urls": list(remote.urls), "size": remote.size}
        else:
            tried = ", ".join(str(p) for p in corpus_candidates(self.source(), self.mirror)) or "no mirror set"
            raise TfpipeError(
                f"corpus {self.source()!r} not found (looked in: {tried}). Give a built-in corpus "
                f"({', '.join(sorted(TEXT_CORPORA))}), the path of a UTF-8 text file, an http(s) URL, "
                f"or put <name>.txt in <mirror>/<name>/ and set TFPIPE_DATA_MIRROR or data.mirror")
        return components

    def produce(self, folder: Path) -> dict[str, Any]:
        target = folder / "corpus.txt"
        local = self.local_file()
        if local:
            data, source = local.read_bytes(), str(local)
        else:
            remote = TEXT_CORPORA.get(self.source()) or RemoteFile(
                corpus_label(self.source()) + ".txt", (self.source(),), None, None)
            source = fetch(remote, folder / ".download.txt")
            data = (folder / ".download.txt").read_bytes()
            (folder / ".download.txt").unlink()
        expected = TEXT_CORPORA[self.source()].size if self.source() in TEXT_CORPORA else None
        if expected is not None and len(data) != expected:
            raise TfpipeError(f"{source}: {len(data)} bytes, expected {expected} for the {self.corpus} "
                              "corpus; the copy is truncated or a different file. Replace it and rerun")
        from tasks.text.prep import decode_corpus

        text = decode_corpus(data, source)
        atomic.write_bytes(target, data)
        logger.info("%s: %d characters from %s", self.source(), len(text), source)
        return {"source": source, "bytes": len(data), "characters": len(text), "sha256": sha256_of(target)}


@requires(DownloadCorpus)
class PreprocessText(PipelineTask):
    """Reads corpus.txt; writes train_ids.npy and heldout_ids.npy (int32 character ids, the
    last `holdout` of the text held out), vocab.json (id -> character) and meta.json."""

    stage = "preprocess"
    lowercase = RequiredBoolParameter(description="lower-case the text first")
    holdout = luigi.FloatParameter(description="fraction at the end held out for evaluation")

    def run_name(self) -> str:
        return corpus_label(self.corpus, self.corpus_options)

    def produce(self, folder: Path) -> dict[str, Any]:
        import numpy as np  # stays out of a no-op rerun

        from tasks.text.prep import build_vocab, decode_corpus, encode, normalise, split_holdout

        source = self.requires().folder() / "corpus.txt"
        text = normalise(decode_corpus(source.read_bytes(), str(source)), self.lowercase)
        vocab = build_vocab(text)
        train, heldout = split_holdout(encode(text, vocab), self.holdout)
        atomic.save_npy(folder / "train_ids.npy", train.astype(np.int32))
        atomic.save_npy(folder / "heldout_ids.npy", heldout.astype(np.int32))
        atomic.write_json(folder / "vocab.json", vocab)
        meta = {"vocab_size": len(vocab), "lowercase": self.lowercase, "holdout": self.holdout,
                "counts": {"train": len(train), "heldout": len(heldout)}}
        atomic.write_json(folder / "meta.json", meta)
        return meta
