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
from tasks.text.prep import check_fractions, normalise, split_text, train_size

logger = logging.getLogger(__name__)


class RequiredBoolParameter(luigi.BoolParameter):
    """A BoolParameter the caller must set: luigi's own defaults to False."""

    def __init__(self, **kwargs: Any):
        super().__init__(parsing=luigi.BoolParameter.EXPLICIT_PARSING, **kwargs)
        self._default = _no_value


@requires(DownloadCorpus)
class PreprocessText(PipelineTask):
    """Reads the corpus through its dataset plugin; writes train_ids.npy, valid_ids.npy and
    heldout_ids.npy (character ids, uint16 when the vocabulary allows): contiguous parts in that
    order, the last `holdout` of the text held out for evaluation and the `validation_fraction`
    before it for validation during training; vocab.json (id -> character) and meta.json."""

    stage = "preprocess"
    lowercase = RequiredBoolParameter(description="lower-case the text first")
    validation_fraction = luigi.FloatParameter(description="fraction just before the held-out part, "
                                                           "for validation during training")
    holdout = luigi.FloatParameter(description="fraction at the end held out for evaluation")

    def run_name(self) -> str:
        return corpus_label(self.corpus, self.corpus_options)

    def check_settings(self) -> None:
        """Refuse, before anything runs, parts that leave no text to train on, and a corpus too
        short for its three parts when its size says so cheaply (then decoded for the exact count)."""
        check_fractions(self.validation_fraction, self.holdout)
        known = self.known_train_chars()
        if known is not None and known[0] < 2:
            self.decoded_train_chars()  # raises the exact error, or a data error (empty, binary)

    def known_train_chars(self) -> tuple[int, bool] | None:
        """(characters of the training text, exact?) known without decoding the corpus: exact once
        preprocessed, else at most the corpus's size in bytes less the validation and held-out
        parts; None when unknown (a URL not downloaded yet)."""
        if self.complete():
            meta = json.loads((self.folder() / "meta.json").read_text("utf-8"))
            return int(meta["counts"]["train"]), True
        size = self.requires().known_bytes()
        return (train_size(size, self.validation_fraction, self.holdout), False) if size is not None else None

    def decoded_train_chars(self) -> int:
        """Characters of the training text, from the local corpus decoded here (a data error such
        as an empty or binary file is raised first); for when an estimate is not enough."""
        text = self.requires().local_text()
        if text is None:
            raise TfpipeError(f"{self.task_id}: no local copy of the corpus to read")
        train, _, _ = split_text(normalise(text, self.lowercase), self.validation_fraction, self.holdout)
        return len(train)

    def produce(self, folder: Path) -> dict[str, Any]:
        import numpy as np  # stays out of a no-op rerun

        from tasks.text.prep import build_vocab, encode, id_dtype, normalise, split_text

        download = self.requires()
        corpus = download.plugin().open_dataset(download.files(), download.options())
        text = normalise(corpus.text, self.lowercase)
        vocab = build_vocab(text)
        dtype = id_dtype(len(vocab))
        train, validation, heldout = split_text(encode(text, vocab), self.validation_fraction, self.holdout)
        atomic.save_npy(folder / "train_ids.npy", train.astype(dtype))
        atomic.save_npy(folder / "valid_ids.npy", validation.astype(dtype))
        atomic.save_npy(folder / "heldout_ids.npy", heldout.astype(dtype))
        atomic.write_json(folder / "vocab.json", vocab)
        meta = {"vocab_size": len(vocab), "ids_dtype": np.dtype(dtype).name,
                "lowercase": self.lowercase, "validation_fraction": self.validation_fraction,
                "holdout": self.holdout,
                "counts": {"train": len(train), "validation": len(validation), "heldout": len(heldout)}}
        atomic.write_json(folder / "meta.json", meta)
        logger.info("%s: %d characters, vocabulary of %d", self.run_name(), len(text), len(vocab))
        return meta
