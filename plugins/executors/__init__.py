"""Built-in executors: where a stage's own process runs (local subprocess, Slurm job)."""
