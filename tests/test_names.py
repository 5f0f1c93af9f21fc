"""One source of each name: the tables that use a name agree with wemem.names."""

from __future__ import annotations

from wemem import models, names, params, pruning
from wemem.attacks.suite import ALL_ATTACKS
from wemem.data.registry import DATASETS
from wemem.defenses import catalog
from wemem.memorization import memscores


def test_the_data_registry_has_exactly_the_named_datasets():
    assert tuple(DATASETS) == names.DATASETS


def test_settings_accept_exactly_the_named_values():
    choices = {f.name: f.metadata.get("allowed") for f in params.FIELDS.values()}
    assert choices["dataset"] == names.DATASETS
    assert choices["arch"] == names.ARCH_NAMES
    assert choices["norm"] == names.NORMS
    assert choices["pruning_approach"] == names.APPROACHES
    assert choices["memscore_method"] == names.MEMSCORE_METHODS


def test_builders_and_estimators_use_the_named_values():
    assert models.ARCHITECTURES == names.ARCH_NAMES
    assert pruning.APPROACHES == names.APPROACHES
    assert memscores.METHODS == names.MEMSCORE_METHODS


def test_every_named_defense_has_hooks_and_every_catalog_entry_a_name():
    dispatched = set(catalog.WEMEM_DEFENSES) | set(catalog.BASELINES)
    assert set(names.DEFENSES) == dispatched


def test_every_paper_attack_is_run_by_the_suite():
    paper = set(names.ATTACKS)
    assert paper <= set(ALL_ATTACKS)
    assert names.label("rsw_l2h") == "RSW(L→H)" and names.label("unknown") == "unknown"
