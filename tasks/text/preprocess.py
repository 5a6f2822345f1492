"""Preprocessing stage of the text path: the corpus as compact character ids."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import luigi
from luigi.parameter import _no_value
from luigi.util import requires

from plugins.errors import TfpipeError
from tasks import atomic
from tasks.base import PipelineTask
from tasks.text.download import DownloadCorpus, corpus_label
from tasks.text.prep import holdout_size, normalise, split_holdout

logger = logging.getLogger(__name__)


class RequiredBoolParameter(luigi.BoolParameter):
    """A BoolParameter the caller must set: luigi's own defaults to False."""

    def __init__(self, **kwargs: Any):
        super().__init__(parsing=luigi.BoolParameter.EXPLICIT_PARSING, **kwargs)
        self._default = _no_value


@requires(DownloadCorpus)
class PreprocessText(PipelineTask):
    """Reads the corpus through its dataset plugin; writes train_ids.npy and heldout_ids.npy
    (character ids, uint16 when the vocabulary allows; the last `holdout` of the text held
    out), vocab.json (id -> character) and meta.json."""

    stage = "preprocess"
    lowercase = RequiredBoolParameter(description="lower-case the text first")
    holdout = luigi.FloatParameter(description="fraction at the end held out for evaluation")

    def run_name(self) -> str:
        return corpus_label(self.corpus, self.corpus_options)

    def known_train_chars(self) -> tuple[int, bool] | None:
        """(characters of the training text, exact?) known without decoding the corpus: exact once
        preprocessed, else at most the corpus's size in bytes less the held-out part; None when
        unknown (a URL not downloaded yet)."""
        if self.complete():
            meta = json.loads((self.folder() / "meta.json").read_text("utf-8"))
            return int(meta["counts"]["train"]), True
        size = self.requires().known_bytes()
        return (size - holdout_size(size, self.holdout), False) if size is not None else None

    def decoded_train_chars(self) -> int:
        """Characters of the training text, from the local corpus decoded here (a data error such
        as an empty or binary file is raised first); for when an estimate is not enough."""
        text = self.requires().local_text()
        if text is None:
            raise TfpipeError(f"{self.task_id}: no local copy of the corpus to read")
        train, _ = split_holdout(normalise(text, self.lowercase), self.holdout)
        return len(train)

    def produce(self, folder: Path) -> dict[str, Any]:
        import numpy as np  # stays out of a no-op rerun

        from tasks.text.prep import build_vocab, encode, id_dtype, normalise, split_holdout

        download = self.requires()
        corpus = download.plugin().open_dataset(download.files(), download.options())
        text = normalise(corpus.text, self.lowercase)
        vocab = build_vocab(text)
        dtype = id_dtype(len(vocab))
        train, heldout = split_holdout(encode(text, vocab), self.holdout)
        atomic.save_npy(folder / "train_ids.npy", train.astype(dtype))
        atomic.save_npy(folder / "heldout_ids.npy", heldout.astype(dtype))
        atomic.write_json(folder / "vocab.json", vocab)
        meta = {"vocab_size": len(vocab), "ids_dtype": np.dtype(dtype).name,
                "lowercase": self.lowercase, "holdout": self.holdout,
                "counts": {"train": len(train), "heldout": len(heldout)}}
        atomic.write_json(folder / "meta.json", meta)
        logger.info("%s: %d characters, vocabulary of %d", self.run_name(), len(text), len(vocab))
        return meta
