"""Victim and shadows of one replicate: cache keys, per-sample outputs, the training stages
(dense, pruned, defended), the adaptive evaluation and the executor (local / Ray)."""

from wemem.experiment.replicate import Experiment, split_table

__all__ = ["Experiment", "split_table"]
