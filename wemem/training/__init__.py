"""The one training loop with hooks (:mod:`.loop`), its bit-identical fast optimizer step on the
CPU (:mod:`.fastpath`), and K models trained together in one stacked step (:mod:`.ensemble`, with
its optimizer in :mod:`.stacked_adam`); every device decision (autocast, memory format, transfers) in
:mod:`.device`."""
