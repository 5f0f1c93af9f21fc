"""Memorization scores (spec §3): the Feldman–Zhang and k-fold estimators (:mod:`.estimators`),
the authors' released files (:mod:`.released`), the min–max scale and τ (:mod:`.tau`), agreement
between estimates (:mod:`.agreement`), and the scores of a training pool, computed or loaded and
cached (:mod:`.memscores`)."""
