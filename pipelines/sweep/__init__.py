"""Sweeps: many ImageRun/TextRun configurations as one run (README, Sweeps).

spec.py reads and expands the ``sweep:`` section, tasks.py holds the Sweep and SweepTrial
tasks, report.py writes report.html and best.yaml.
"""

GRID_LIMIT = 1000  # a bigger grid runs only with --yes
