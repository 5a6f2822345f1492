"""Built-in device policies (entry-point group tfpipe.devices).

A device policy is a module with:

- ``DEFAULTS``: the options it reads, with defaults (options of combined policies
  share one namespace, e.g. ``ids`` and ``fallback``).
- ``environment(options, gpu_ids) -> dict``: variables for the training subprocess
  (Luigi process, no TensorFlow). ``gpu_ids`` are the physical GPU ids handed to
  this task, or None when GPUs are not managed.
- ``configure(tf, options, context) -> dict``: tf.config calls in the worker right
  after TensorFlow is imported, before any op; returns what it did (recorded).
  ``context``: {"gpu_ids": ..., "gpus": tf.config.list_physical_devices("GPU")}.
- ``strategy(tf, options, context)``: a tf.distribute strategy, or None.
- optional ``gpu_request(options)``: None (needs no GPU), {} (any visible GPU),
  {"ids": [...]} or {"count": n | "all"} (GPUs handed out per running task).
- optional ``CONFLICTS``: names of policies it cannot be combined with.
- optional ``MULTI_WORKER = True``: it trains as several processes; under an executor
  whose cluster starts them (slurm), one per task, TF_CONFIG built there.
"""
