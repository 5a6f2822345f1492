"""Generation stage of the text path (its work() runs in its own TensorFlow process).

Its own parameters (temperatures, length, sample_seed, seed_length) are the
only ones generation adds, so changing them reruns generation alone.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import luigi
from luigi.util import requires

from plugins.errors import TfpipeError
from tasks import atomic
from tasks.base import StageTask
from tasks.protocol import emit, run_stage
from tasks.text.download import corpus_label
from tasks.text.prep import check_temperatures
from tasks.text.train import TrainTextModel

# XLA makes a sampling step several times cheaper for a few streams, but compiling costs about 2 s
# once per process. One call, 4 temperatures, plain vs XLA, on a shared 2-core CPU (ranges over the
# runs of bench/text_generation_speed.py --one-shot): 400 chars 0.6 vs 2.0-2.2 s, 6,000 chars 2.6-2.8 vs 2.8-2.9 s,
# 10,000 chars 3.1-4.4 vs 2.7-5.5 s, 30,000 chars 9.5-10.5 vs 3.4-5.8 s. The random draws are the
# same either way (tests/test_text_generation.py).
XLA_FROM_LENGTH = 6_000


@requires(TrainTextModel)
class GenerateText(StageTask):
    """Reads model.keras, vocab.json and the held-out ids; writes samples.txt and samples.json:
    `length` characters per temperature, after a seeded seed passage of held-out text."""

    stage = "generate"

    temperatures = luigi.ListParameter(description="sampling temperatures, e.g. '[0.5, 1.0]'")
    length = luigi.IntParameter(description="characters generated per temperature")
    sample_seed = luigi.IntParameter(description="seed of the seed passage and the sampling")
    seed_length = luigi.IntParameter(description="characters of the seed passage")

    def run_name(self) -> str:
        return f"{corpus_label(self.corpus, self.corpus_options)}-{self.model}"

    def produce(self, folder: Path) -> dict[str, Any]:
        if self.length < 1 or self.seed_length < 1:
            raise TfpipeError(f"length={self.length} and seed_length={self.seed_length} must be at least 1")
        train = self.requires()
        request = {
            "data_dir": str(train.requires().folder()),
            "model_dir": str(train.folder()),
            "out_dir": str(folder),
            "temperatures": check_temperatures(self.temperatures, "temperatures"),
            "length": self.length,
            "sample_seed": self.sample_seed,
            "seed_length": self.seed_length,
        }
        return run_stage(self, request, folder, env=train.tensorflow_env())


# ----- the stage's own process: python -m tasks.text.generate REQUEST.json -----

def render_samples(seed_text: str, samples: list[dict[str, Any]]) -> str:
    lines = ["seed passage (held-out text):", seed_text, ""]
    for sample in samples:
        lines += [f"--- temperature {sample['temperature']}", seed_text + sample["text"], ""]
    return "\n".join(lines)


def work(request: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from tasks.text.prep import check_temperatures, decode, encode, seed_passage
    from tasks.text.sampling import Sampler
    from tasks.text.scoring import load_char_model
    from tasks.tf_runtime import start_tensorflow
    start_tensorflow(seed=request["sample_seed"], deterministic=False)
    data_dir, model_dir, out = Path(request["data_dir"]), Path(request["model_dir"]), Path(request["out_dir"])
    temperatures = check_temperatures(request["temperatures"])
    vocab = json.loads((data_dir / "vocab.json").read_text("utf-8"))
    model = load_char_model(model_dir, vocab, str(model_dir))
    heldout = decode(np.load(data_dir / "heldout_ids.npy"), vocab)
    seed_text = seed_passage(heldout, request["seed_length"], request["sample_seed"])
    sampler = Sampler(model, jit_compile=request["length"] >= XLA_FROM_LENGTH)
    started = time.perf_counter()
    ids = sampler(encode(seed_text, vocab), temperatures, request["length"], request["sample_seed"])
    seconds = time.perf_counter() - started  # includes tracing (and compiling) the loops once
    samples = [{"temperature": t, "text": decode(row, vocab)} for t, row in zip(temperatures, ids)]
    emit("log", message=f"generated {len(temperatures)} x {request['length']} characters in {seconds:.1f}s")
    atomic.write_json(out / "samples.json", {"seed_text": seed_text, "samples": samples,
                                             "length": request["length"], "sample_seed": request["sample_seed"]})
    atomic.write_text(out / "samples.txt", render_samples(seed_text, samples))
    return {"seed_text": seed_text, "samples": samples, "seconds": round(seconds, 2)}


if __name__ == "__main__":
    from tasks.protocol import main

    main(work)
