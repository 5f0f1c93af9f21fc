"""Batch reproduction with papermill: the run manifest, run discovery and validation, the one
parser of a notebook's parameters cell, fingerprints (skip unchanged runs), the pre-run checks,
executing one notebook into its run folder (:mod:`.execution`), a whole profile (:mod:`.runner`),
and the notebooks' generated navigation line."""
