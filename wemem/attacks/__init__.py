"""Membership inference attacks (§6.2): metric-based, classifier-based and offline LiRA.

:mod:`.metric` holds the paper's four metric-based (threshold) attacks, :mod:`.classifier`,
:mod:`.shokri` and :mod:`.samia` the classifier attacks, :mod:`.lira` offline LiRA, and
:mod:`.suite` runs any set of them on one victim with one set of shadows into one table.
"""

from __future__ import annotations

from wemem.attacks.metric import METRIC_ATTACKS, PER_CLASS, metric_attack, run_metric_attacks
from wemem.attacks.suite import ALL_ATTACKS, CLASSIFIER_ATTACKS, run

__all__ = [
    "ALL_ATTACKS",
    "CLASSIFIER_ATTACKS",
    "METRIC_ATTACKS",
    "PER_CLASS",
    "metric_attack",
    "run",
    "run_metric_attacks",
]
