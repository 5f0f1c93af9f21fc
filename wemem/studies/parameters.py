"""Every notebook parameter outside :class:`wemem.params.Settings`, typed and ranged in one table.

:class:`~wemem.params.Settings` validates the shared settings (dataset, arch, epochs, rates …);
:data:`RULES` holds every *other* parameter a notebook's ``parameters`` cell declares (attacks,
window grids, λr, σ, the search's rungs …), one line each, and :data:`CROSS` the rules that tie
parameters of one notebook together. :func:`check_notebook_params` applies both, so a bad value
fails before anything trains, with one line naming the parameter, its value and what is allowed.

Where the code that uses a parameter already checks it, the rule calls that check
(``via`` and the cross rules: :func:`~wemem.studies.windows.check_orders`,
:func:`~wemem.studies.sweeps.check_attacks`, :func:`~wemem.defenses.config.window_grid`,
:func:`~wemem.studies.comparison.dp_configs`, :class:`~wemem.studies.comparison.Choice`,
:func:`~wemem.studies.rmr.rmr_configs`, :func:`~wemem.defenses.catalog.defense_spec`,
:class:`~wemem.memorization.tau.TauRule`, :func:`~wemem.attacks.classifier.train_settings`); none of
them trains or loads data. Numbers are finite everywhere: no parameter gives NaN or ∞ a meaning
(σ = 0 is how DP-SGD without noise, ε = ∞, is asked for). ``True``/``False`` are not integers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from wemem.attacks.classifier import train_settings
from wemem.data.splits import reference_keep
from wemem.defenses.catalog import defense_spec
from wemem.defenses.config import window_grid
from wemem.defenses.primitives import MODES
from wemem.errors import ParamsError
from wemem.experiment.adaptive import STAGES
from wemem.memorization.tau import TauRule
from wemem.names import APPROACHES, ATTACKS
from wemem.params import FIELDS, Settings, validate
from wemem.studies.comparison import ADV_MODES, PAPER_BARS, choice_from, dp_configs
from wemem.studies.rmr import rmr_configs
from wemem.studies.sweeps import check_attacks
from wemem.studies.windows import ORDERS, check_orders

__all__ = [
    "CROSS",
    "RULES",
    "SECTIONS",
    "Cross",
    "Rule",
    "check_notebook_params",
    "check_value",
    "settings_from",
]

#: The comparisons notebook 09 can run: Fig. 8 (iterative vs one-shot), the pruning rates, Fig. 9.
SECTIONS = ("one_shot", "rates", "structured")
_TYPE_NAMES = {int: ("an integer", "integers"), float: ("a finite number", "finite numbers")}


@dataclass(frozen=True)
class Rule:
    """What one parameter allows.

    Attributes:
        type: ``int`` (bools refused), ``float`` (ints accepted; NaN and ±∞ refused) or ``str``
            (non-blank when there are no ``choices``).
        lo, hi, lo_open, hi_open: the range of a number (``None``: unbounded on that side).
        choices: the allowed strings.
        many: a list (or tuple) of such values; ``min_len`` items at least, ``lengths`` the only
            allowed lengths when given, ``unique`` no value twice.
        optional: ``None`` is allowed too; ``note`` says what it means.
        via: an existing check of the code that uses the parameter, called with the value after
            the rule's own checks (raises :class:`ParamsError`).
    """

    type: type
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] = ()
    many: bool = False
    min_len: int = 1
    lengths: tuple[int, ...] = ()
    unique: bool = True
    optional: bool = False
    via: Callable[[Any], Any] | None = None
    note: str = ""

    def _one(self, plural: bool = False) -> str:
        if self.choices:
            return f"{'from' if plural else 'one of'} {', '.join(self.choices)}"
        if self.type is str:
            return "non-blank strings" if plural else "a non-blank string"
        noun = _TYPE_NAMES[self.type][plural]
        if self.lo is not None and self.hi is not None:
            lo, hi = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
            return f"{noun} in {lo}{self.lo:g}, {self.hi:g}{hi}"
        if self.lo is not None:
            return f"{noun} {'>' if self.lo_open else '>='} {self.lo:g}"
        return noun

    def allowed(self) -> str:
        """What the rule allows, in words (the end of every error message it raises)."""
        if self.many:
            size = (
                " or ".join(map(str, self.lengths)) + " items"
                if self.lengths
                else (f"{self.min_len}+ items" if self.min_len else "any length")
            )
            what = self._one(True)
            of = "" if self.choices else "of "
            text = f"a list ({size}{', no repeats' if self.unique else ''}) {of}{what}"
        else:
            text = self._one()
        text = f"None or {text}" if self.optional else text
        return f"{text} ({self.note})" if self.note else text

    def accepts(self, item: Any) -> bool:
        """Whether one value (one item of a list) has the rule's type, choice and range."""
        if self.type is str:
            ok = isinstance(item, str)
            return ok and (item in self.choices if self.choices else bool(item.strip()))
        if isinstance(item, bool) or not isinstance(item, int | float):
            return False
        if self.type is int and not isinstance(item, int):
            return False
        if not math.isfinite(item):
            return False
        low_bad = self.lo is not None and (item <= self.lo if self.lo_open else item < self.lo)
        high_bad = self.hi is not None and (item >= self.hi if self.hi_open else item > self.hi)
        return not (low_bad or high_bad)


def _each(check: Callable[[Any], Any]) -> Callable[[Any], None]:
    """A check of one value, applied to every item of a list."""
    return lambda values: [check(v) for v in values]


def _share(share: float) -> None:  # τ's quantile rule; released mem-scores ignore the share
    TauRule("quantile", share=float(share))


def _lambda(value: float) -> None:
    defense_spec("rmr", tau=0.5, lambda_r=value)


def _lambdas(values) -> None:
    rmr_configs(tau=0.5, lambdas=values)
    _each(_lambda)(values)


def _epochs(value: int) -> None:
    train_settings(epochs=value)


def _increasing(values) -> None:
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ParamsError(f"rungs = {list(values)!r}: strictly increasing model counts")


_POSITIVE = {"lo": 0.0, "lo_open": True}
_FRACTION = {"lo": 0.0, "hi": 1.0, "lo_open": True, "hi_open": True}
_EPOCHS = {"lo": 1, "hi": 10_000, "via": _epochs}
_WINDOW = {"lo": 1, "many": True, "lengths": (0, 2), "unique": False, "note": "[] or [w, s]"}

#: Every notebook parameter outside :data:`wemem.params.FIELDS`: name → rule (notebooks using it).
RULES: dict[str, Rule] = {
    # attacks (03–09, 11)
    "attacks": Rule(str, choices=tuple(ATTACKS), many=True),
    "attack_epochs": Rule(int, **_EPOCHS),
    "samia_epochs": Rule(int, **_EPOCHS),  # 08
    "attack_train_max": Rule(int, lo=1, optional=True, note="None: every shadow sample"),
    "stages": Rule(str, choices=STAGES, many=True),  # 08
    "leakage_fpr": Rule(float, **_FRACTION),  # 08
    "lira_refs": Rule(int, lo=4, hi=4096, via=lambda k: reference_keep(0, k, 0), note="even"),
    "rmia_gamma": Rule(float, lo=1.0, note="RMIA's γ (paper: 1)"),  # 06, 08 (with lira_refs)
    "strongest_boot": Rule(int, lo=20, hi=100_000, note="bootstrap resamples"),  # 06, 08
    # mem-scores (01) and the motivation (02)
    "kfold_models": Rule(int, lo=2, note="folds of the k-fold proxy"),
    "convergence_ks": Rule(int, lo=2, many=True, note="each <= memscore_models"),
    "reuse_epochs": Rule(int, lo=1, hi=10_000, many=True, min_len=2, note="a sweep: 2+ values"),
    # sliding windows (03, 05–07, 09–11)
    "orders": Rule(str, choices=tuple(ORDERS), many=True, via=check_orders),
    "widths": Rule(int, lo=1, many=True, min_len=0, note="with steps; []: the paper's rule"),
    "steps": Rule(int, lo=1, many=True, min_len=0, note="with widths; []: the paper's rule"),
    "window_mode": Rule(str, choices=MODES),
    "rsw_window": Rule(int, **_WINDOW),
    "swmr_window": Rule(int, **_WINDOW),
    # RMR and SWMR (04, 05, 11)
    "lambdas": Rule(float, **_POSITIVE, many=True, via=_lambdas),
    "rmr_lambdas": Rule(float, **_POSITIVE, many=True, via=_lambdas),  # 11
    "lambda_r": Rule(float, **_POSITIVE, via=_lambda),  # 05
    "tau_share": Rule(float, **_FRACTION, via=_share),
    "tau_shares": Rule(float, **_FRACTION, many=True, via=_each(_share)),  # 11
    # baselines (06, 10) and DP-SGD (07)
    "betas": Rule(float, **_POSITIVE, many=True, note="PPB β"),
    "alphas": Rule(float, **_POSITIVE, many=True, note="RelaxLoss α"),
    "thetas": Rule(float, **_POSITIVE, many=True, note="ADV θ"),
    "adv_modes": Rule(str, choices=ADV_MODES, many=True),
    "adv_attack_every": Rule(int, lo=1),
    "dp_passes_per_epoch": Rule(float, **_POSITIVE, many=True),
    "sigmas": Rule(float, lo=0.0, many=True, min_len=0, note="σ = 0: no noise, ε = ∞"),
    "target_epsilons": Rule(float, **_POSITIVE, many=True, min_len=0),
    # pruning choices (09)
    "rates": Rule(float, **_FRACTION, many=True, min_len=0, note="besides pruning_rate"),
    "approaches": Rule(str, choices=APPROACHES, many=True, min_len=0),
    "approach_defenses": Rule(str, choices=PAPER_BARS, many=True, min_len=0),
    "sections": Rule(str, choices=SECTIONS, many=True),
    # time (10), the search (11), the paper tables (12)
    "time_repeats": Rule(int, lo=1),
    "rungs": Rule(int, lo=2, many=True, via=_increasing, note="increasing, <= n_shadows"),
    "eta": Rule(int, lo=2, note="keep the best 1/eta"),
    "target_advantage": Rule(float, lo=0.0, hi=1.0, optional=True, note="None: U - weight·A"),
    "weight": Rule(float, lo=0.0),
    "outputs_root": Rule(str),
}


def _fail(name: str, value: Any, reason: str) -> NoReturn:
    raise ParamsError(f"parameter {name!r} = {value!r}: {reason}")


def _reuse(name: str, values: Mapping[str, Any], check: Callable[..., Any], *args, **kw) -> None:
    """Call an existing ``check``; re-raise its :class:`ParamsError` as one line naming the
    parameter (the one its message starts with, when that is a parameter of ``values``)."""
    try:
        check(*args, **kw)
    except ParamsError as e:
        msg = " ".join(str(e).split())
        head = re.match(r"(\w+) = ", msg)
        if head and head.group(1) in values:
            name = head.group(1)
        value = values[name]
        shown = repr(list(value)) if isinstance(value, list | tuple) else repr(value)
        for prefix in (f"{name} = {value!r}: ", f"{name} = {shown}: "):
            msg = msg.removeprefix(prefix)
        _fail(name, value, msg)


def check_value(name: str, value: Any) -> None:
    """Raise :class:`ParamsError` unless ``value`` is allowed by ``RULES[name]``."""
    rule = RULES[name]
    if value is None and rule.optional:
        return
    if not rule.many:
        if not rule.accepts(value):
            _fail(name, value, f"allowed is {rule.allowed()}")
    else:
        if not isinstance(value, list | tuple):
            _fail(name, value, f"allowed is {rule.allowed()}")
        bad = [v for v in value if not rule.accepts(v)]
        if bad:
            _fail(name, value, f"{bad[0]!r} is not allowed; allowed is {rule.allowed()}")
        short = len(value) not in rule.lengths if rule.lengths else len(value) < rule.min_len
        if short or (rule.unique and len(set(value)) != len(value)):
            _fail(name, value, f"allowed is {rule.allowed()}")
    if rule.via is not None:
        _reuse(name, {name: value}, rule.via, value)


# ------------------------------------------------------------------ rules across parameters


@dataclass(frozen=True)
class Cross:
    """A rule across parameters of one notebook: ``check(values, settings)`` raises
    :class:`ParamsError`; skipped when a name of ``needs`` is not in the values."""

    needs: tuple[str, ...]
    check: Callable[[Mapping[str, Any], Settings], None]
    doc: str


def _ks(v: Mapping[str, Any], s: Settings) -> None:
    over = [k for k in v["convergence_ks"] if k > s.memscore_models]
    if over:
        allowed = f"each k <= memscore_models = {s.memscore_models}; {over[0]} is not"
        _fail("convergence_ks", v["convergence_ks"], allowed)


def _window_grid(v: Mapping[str, Any], s: Settings) -> None:
    name = "widths" if not v["widths"] else "steps"
    _reuse(name, v, window_grid, 100.0, widths=v["widths"], steps=v["steps"])


def _sections(v: Mapping[str, Any], s: Settings) -> None:
    sections = v["sections"]
    if "rates" in sections and not v["rates"]:
        _fail("rates", v["rates"], "at least one rate while sections include 'rates'")
    if "structured" in sections and len(v["approaches"]) < 2:
        _fail("approaches", v["approaches"], "two or more while sections include 'structured'")
    if "structured" in sections and not v["approach_defenses"]:
        allowed = "one or more while sections include 'structured'"
        _fail("approach_defenses", v["approach_defenses"], allowed)


def _rungs(v: Mapping[str, Any], s: Settings) -> None:
    if max(v["rungs"]) > s.n_shadows:
        _fail("rungs", v["rungs"], f"each <= n_shadows = {s.n_shadows}")


_PAPER_ATTACK = Cross(
    ("attacks",),
    lambda v, s: _reuse("attacks", v, check_attacks, v["attacks"]),
    "a sweep's tables average the paper's attacks: one of them at least (check_attacks)",
)
_CHOICE = Cross(
    ("window_mode",),
    lambda v, s: _reuse("window_mode", v, choice_from, v),
    "the comparison's chosen settings build a Choice (windows, clipping, ADV modes, DP passes)",
)
_GRID = Cross(
    ("widths", "steps"),
    _window_grid,
    "widths and steps both given (the settings table) or both empty (window_grid)",
)
#: notebook stem → rules across its parameters, applied after every single value passed.
CROSS: dict[str, tuple[Cross, ...]] = {
    "01_memorization_scores": (
        Cross(("convergence_ks",), _ks, "each k <= memscore_models (the first k models)"),
    ),
    "03_defense_rsw": (_PAPER_ATTACK, _GRID),
    "04_defense_rmr": (_PAPER_ATTACK,),
    "05_defense_swmr": (_PAPER_ATTACK, _GRID),
    "06_baselines": (_PAPER_ATTACK, _CHOICE),
    "07_dpsgd_opacus": (
        _PAPER_ATTACK,
        _CHOICE,
        Cross(
            ("sigmas", "target_epsilons"),
            lambda v, s: _reuse(
                "sigmas",
                v,
                dp_configs,
                [],
                sigmas=v["sigmas"],
                target_epsilons=v["target_epsilons"],
            ),
            "at least one DP-SGD row: a σ or a target ε (dp_configs)",
        ),
    ),
    "09_pruning_approaches": (
        _PAPER_ATTACK,
        _CHOICE,
        Cross(
            ("sections", "rates", "approaches", "approach_defenses"),
            _sections,
            "a section that runs has its values: rates; 2+ approaches and a defense under them",
        ),
    ),
    "10_time_cost": (_CHOICE,),
    "11_autotune": (
        _PAPER_ATTACK,
        _CHOICE,
        _GRID,
        Cross(("rungs",), _rungs, "each rung's model count <= n_shadows (shadow0: pseudo-victim)"),
    ),
}


def check_notebook_params(
    stem: str, values: Mapping[str, Any], settings: Settings | None = None
) -> None:
    """Raise :class:`ParamsError` (one line: the parameter, its value, what is allowed) for the
    first bad parameter of notebook ``stem`` (``03_defense_rsw``; a variant suffix ``.x`` is
    ignored), before anything trains.

    ``values`` are the notebook's parameters (its defaults merged with a params file's
    overrides): each one of :data:`RULES` is checked in order, then the notebook's
    :data:`CROSS` rules, which read the shared settings from ``settings`` (default: the
    :data:`~wemem.params.FIELDS` of ``values``, validated, so a bad shared value fails here too).
    Names in neither table (``profile``, ``output_dir``: :class:`Settings` fields) are ignored.
    """
    for name, value in values.items():
        if name in RULES:
            check_value(name, value)
    if settings is None:
        settings = validate({k: v for k, v in values.items() if k in FIELDS})
    for rule in CROSS.get(stem.split(".")[0], ()):
        if all(n in values for n in rule.needs):
            rule.check(values, settings)


def settings_from(namespace: Mapping[str, Any], notebook: str) -> Settings:
    """A notebook's setup cell: ``settings = parameters.settings_from(globals(), "<stem>")``.

    The shared settings of the ``parameters`` cell validated (:func:`wemem.params.settings_from`),
    and every other parameter it declares checked against :data:`RULES` and the notebook's
    :data:`CROSS` rules, so a papermill user's bad value fails here, before anything trains.
    """
    values = {k: namespace[k] for k in (*FIELDS, *RULES) if k in namespace}
    settings = validate({k: v for k, v in values.items() if k in FIELDS})
    check_notebook_params(notebook, values, settings)
    return settings
