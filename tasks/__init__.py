"""Luigi tasks of tfpipe: one module per stage plus the thin base task.

Nothing in this package imports TensorFlow at module level; the modules whose
names end in ``_tf`` run only inside a training/evaluation subprocess.
"""
