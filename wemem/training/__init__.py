"""The one training loop with hooks (:mod:`.loop`) and K models trained together in one stacked
step (:mod:`.ensemble`, with its optimizer in :mod:`.stacked_adam`)."""
