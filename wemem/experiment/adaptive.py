"""Adaptive attacks on cached models: the victim and its shadows at one pipeline stage.

*Adaptive* (spec §6.3): the shadows went through exactly the victim's pipeline (same training,
pruning and defense settings), so they come from the same cache entries the victim does; nothing is
retrained per attack. This module gathers the models of one stage, adds the posterior sensitivity
(cached, computed only when an attack needs it), runs :func:`wemem.attacks.run`, and splits leakage
by memorization score.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from torch import nn

from wemem.attacks import run as run_attacks
from wemem.attacks.metrics import tpr_at_fpr
from wemem.attacks.suite import CLASSIFIER_ATTACKS, FAMILY, SENSITIVITY_ATTACKS
from wemem.errors import ParamsError
from wemem.experiment import attack_cache, executor
from wemem.experiment.executor import Request
from wemem.experiment.keys import sensitivity_spec
from wemem.experiment.outputs import ModelOutputs
from wemem.experiment.replicate import Experiment

log = logging.getLogger(__name__)

STAGES = ("dense", "one-shot", "iterative")


@dataclass
class Stage:
    """The victim's and every shadow's outputs and models at one stage (``roles[0]`` = victim)."""

    name: str
    roles: list[str]
    outputs: dict[str, ModelOutputs]
    models: dict[str, nn.Module]
    summary: dict | None = None  # the victim's pruning summary (seconds, epochs), when known

    @property
    def victim(self) -> ModelOutputs:
        return self.outputs["victim"]

    @property
    def shadows(self) -> list[ModelOutputs]:
        return [self.outputs[r] for r in self.roles[1:]]


def stage(exp: Experiment, name: str) -> Stage:
    """Models of a stage: ``dense``, ``one-shot`` or ``iterative`` (Base), from the cache."""
    if name not in STAGES:
        raise ParamsError(f"stage = {name!r}: allowed values are {', '.join(STAGES)}")
    kind = "dense" if name == "dense" else "pruned"
    exp.prefetch([Request(kind, r, one_shot=name == "one-shot") for r in exp.roles])
    outputs, models = {}, {}
    for role in exp.roles:
        if name == "dense":
            model, _, out = exp.dense(role)
        else:
            run = exp.pruned(role, one_shot=name == "one-shot")
            model, out = exp.load_pruned_model(run, role), run.final
        outputs[role], models[role] = out, model.eval()
    return Stage(name, list(exp.roles), outputs, models)


def defended_stage(
    exp: Experiment, defense: str, *, name: str | None = None, one_shot: bool = False, **settings
) -> Stage:
    """Victim and shadows pruned (iteratively, or one-shot) with ``defense`` (adaptive: the same
    settings for every model), on the models of ``exp.for_defense(defense)`` (DP-SGD on a
    BatchNorm CNN: the GroupNorm twin's; its pool and cache are ``exp``'s, so :func:`evaluate`
    may be given either)."""
    exp.prefetch([Request("defended", r, defense, one_shot, settings) for r in exp.roles])
    exp = exp.for_defense(defense)
    outputs, models, summary = {}, {}, None
    for role in exp.roles:
        run = exp.defended(role, defense, one_shot=one_shot, **settings)
        outputs[role], models[role] = run.final, exp.load_pruned_model(run, role).eval()
        if role == "victim":
            summary = run.summary
    return Stage(name or defense, list(exp.roles), outputs, models, summary)


def _state_digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def add_sensitivity(
    exp: Experiment,
    st: Stage,
    *,
    m: int = 10,
    eps: float = 1e-3,
    seed: int = 0,
    picks: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> Stage:
    """Attach ``sens_in``/``sens_out`` (spec §6.2) to every role's outputs, cached per model.

    ``picks``: for some roles, the (member, non-member) positions to keep (:func:`_picks`):
    those roles' outputs are cut to them and only there is the sensitivity computed, with the
    whole computation's noise (:func:`wemem.attacks.sensitivity.sensitivity`'s ``positions``):
    classifier attacks that train on ``attack_train_max`` shadow rows need no more."""
    from wemem.attacks.sensitivity import sensitivity

    outputs = {}
    for i, role in enumerate(st.roles):
        out, model = st.outputs[role], st.models[role]
        pick = (picks or {}).get(role)
        positions = None if pick is None else np.concatenate([pick[0], len(out.rows_in) + pick[1]])
        spec = sensitivity_spec(
            model=_state_digest(model),
            rows_in=_digest(out.rows_in),
            rows_out=_digest(out.rows_out),
            m=m,
            eps=eps,
            seed=seed + i,
            picked=None if positions is None else _digest(positions.astype(np.int64)),
        )
        n_in = len(out.rows_in) if pick is None else len(pick[0])

        def compute(out=out, model=model, i=i, positions=positions, n_in=n_in) -> dict:
            rows = np.concatenate([out.rows_in, out.rows_out])
            sens = sensitivity(
                model, exp.pool.x, rows, m=m, eps=eps, seed=seed + i, positions=positions
            )
            sens = sens.cpu().numpy()
            return {"in": sens[:n_in], "out": sens[n_in:]}

        entry, _ = exp.cache.get_or_compute("sensitivity", spec, compute)
        out = out if pick is None else _take(out, *pick)
        outputs[role] = replace(out, sens_in=entry["in"], sens_out=entry["out"])
    return Stage(st.name, st.roles, outputs, st.models, st.summary)


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(array).tobytes()).hexdigest()


def _picks(out: ModelOutputs, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """At most ``k`` member and ``k`` non-member positions of one model, sorted."""
    return tuple(np.sort(rng.permutation(len(rows))[:k]) for rows in (out.rows_in, out.rows_out))


def _take(out: ModelOutputs, i_in: np.ndarray, i_out: np.ndarray) -> ModelOutputs:
    """One model's outputs at the member positions ``i_in`` and non-member positions ``i_out``."""
    return replace(
        out,
        probs_in=out.probs_in[i_in],
        labels_in=out.labels_in[i_in],
        rows_in=out.rows_in[i_in],
        flipped_in=out.flipped_in[i_in],
        probs_out=out.probs_out[i_out],
        labels_out=out.labels_out[i_out],
        rows_out=out.rows_out[i_out],
        flipped_out=out.flipped_out[i_out],
        sens_in=None if out.sens_in is None else out.sens_in[i_in],
        sens_out=None if out.sens_out is None else out.sens_out[i_out],
    )


@dataclass(eq=False)
class PendingEvaluation:
    """An evaluation whose classifier attacks may still be training on the executor's workers
    (:func:`submit_evaluation`); :meth:`table` waits for them and returns :func:`evaluate`'s
    table."""

    stage: str
    names: list[str]
    victim: ModelOutputs
    frames: list[pd.DataFrame]
    classifier: _ClassifierResults | None

    def table(self) -> pd.DataFrame:
        frames = self.frames + (self.classifier.results() if self.classifier else [])
        attrs: dict = {"roc": {}, "scores": {}}
        for f in frames:
            attrs["roc"].update(f.attrs.get("roc", {}))
            attrs["scores"].update(f.attrs.get("scores", {}))
            f.attrs = {}  # pandas compares attrs on concat; arrays of unequal length cannot be
        df = pd.concat(frames, ignore_index=True)
        df = df.set_index("attack").loc[self.names].reset_index()
        df.insert(0, "stage", self.stage)
        df.attrs = {**attrs, "victim": self.victim}
        return df


def evaluate(
    exp: Experiment,
    st: Stage,
    names,
    *,
    attack_epochs: int = 100,
    attack_train_max: int | None = None,
    epochs_by_attack: dict[str, int] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """All ``names`` against the stage's victim, calibrated/trained on its shadows.

    Metric attacks and LiRA use every shadow sample. Classifier attacks train on at most
    ``attack_train_max`` members and as many non-members pooled over the shadows (all when
    ``None``, as the paper), for ``attack_epochs`` epochs (or ``epochs_by_attack[name]``, e.g. a
    shorter SAMIA on a CPU) with the LR drops at 50 % and 75 %.
    """
    return submit_evaluation(
        exp,
        st,
        names,
        attack_epochs=attack_epochs,
        attack_train_max=attack_train_max,
        epochs_by_attack=epochs_by_attack,
        seed=seed,
    ).table()


def submit_evaluation(
    exp: Experiment,
    st: Stage,
    names,
    *,
    attack_epochs: int = 100,
    attack_train_max: int | None = None,
    epochs_by_attack: dict[str, int] | None = None,
    seed: int = 0,
) -> PendingEvaluation:
    """:func:`evaluate` in two steps: the classifier attacks are read from the cache or submitted
    to the executor (one task per attack model, each seeded on its own, so the numbers are those
    of ``local``), the other attacks run here meanwhile; ``.table()`` collects."""
    names = list(names)
    cheap = [n for n in names if n not in CLASSIFIER_ATTACKS]
    costly = [n for n in names if n in CLASSIFIER_ATTACKS]
    classifier = None
    if costly:
        classifier = _submit_classifiers(
            exp,
            st,
            costly,
            attack_epochs=attack_epochs,
            attack_train_max=attack_train_max,
            epochs_by_attack=epochs_by_attack,
            seed=seed,
        )
    frames = []
    if cheap:
        frames.append(
            run_attacks(
                cheap,
                st.victim,
                st.shadows,
                victim_model=st.models["victim"],
                shadow_models=[st.models[r] for r in st.roles[1:]],
                x=exp.pool.x,
                seed=seed,
            )
        )
    return PendingEvaluation(st.name, names, st.victim, frames, classifier)


def _submit_classifiers(
    exp: Experiment,
    st: Stage,
    costly: list[str],
    *,
    attack_epochs: int,
    attack_train_max: int | None,
    epochs_by_attack: dict[str, int] | None,
    seed: int,
) -> _ClassifierResults:
    """The classifier attacks' tables (see :func:`evaluate`): each attack model is read from the
    cache (:func:`~wemem.experiment.attack_cache.attack_spec`: the same inputs, seed and recipe were scored before, e.g. Base or a
    grid setting in another notebook) or trained by one task (``local``: here, now)."""
    picks = None
    if attack_train_max:
        rng = np.random.default_rng(seed)
        per = max(1, attack_train_max // len(st.shadows))
        picks = {r: _picks(st.outputs[r], per, rng) for r in st.roles[1:]}
    if any(n in SENSITIVITY_ATTACKS for n in costly):  # only the rows the attacks train on
        st = add_sensitivity(exp, st, seed=seed, picks=picks)
    elif picks:
        outputs = {r: _take(st.outputs[r], *picks[r]) for r in st.roles[1:]}
        st = replace(st, outputs={"victim": st.victim, **outputs})
    shadows = st.shadows
    cached, todo = {}, []
    for name in costly:
        epochs = (epochs_by_attack or {}).get(name, attack_epochs)
        call = {
            "names": [name],
            "victim": st.victim,
            "shadows": shadows,
            "seed": seed,
            "epochs": epochs,
            # LR ×0.1 at 50 % and 75 % of the epochs (none left for a one-epoch model)
            "milestones": tuple(m for m in (epochs // 2, (3 * epochs) // 4) if m >= 1),
        }
        spec = attack_cache.attack_spec(call)
        entry = exp.cache.load("attack", exp.cache.key("attack", spec))
        if entry is not None:
            cached[name] = attack_cache.frame_of(entry)
        else:
            todo.append((name, spec, call))
    pending = executor.submit_calls(run_attacks, [call for _, _, call in todo])
    return _ClassifierResults(exp, costly, cached, todo, pending)


@dataclass(eq=False)
class _ClassifierResults:
    """Cached and submitted classifier attacks of one evaluation; :meth:`results` waits for the
    submitted ones, caches them and returns one table per attack, in ``costly``'s order."""

    exp: Experiment
    costly: list[str]
    cached: dict[str, pd.DataFrame]
    todo: list[tuple[str, dict, dict]]
    pending: executor.Pending

    def results(self) -> list[pd.DataFrame]:
        frames = dict(self.cached)
        for (name, spec, _), frame in zip(self.todo, self.pending.results(), strict=True):
            key = self.exp.cache.key("attack", spec)
            self.exp.cache.save("attack", key, attack_cache.entry_of(frame, name), spec)
            frames[name] = frame
        return [frames[n] for n in self.costly]


def evaluate_stages(
    exp: Experiment,
    stages,
    names,
    *,
    attack_epochs: int = 100,
    attack_train_max: int | None = None,
    epochs_by_attack: dict[str, int] | None = None,
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """:func:`evaluate` for each stage (``{stage: table}``); the classifier attacks of every stage
    are submitted before the first table is collected."""
    pending = {
        name: submit_evaluation(
            exp,
            stage(exp, name),
            names,
            attack_epochs=attack_epochs,
            attack_train_max=attack_train_max,
            epochs_by_attack=epochs_by_attack,
            seed=seed,
        )
        for name in stages
    }
    return {name: p.table() for name, p in pending.items()}


def memscore_leakage(
    attacks: pd.DataFrame,
    memscore: np.ndarray,
    *,
    victim: ModelOutputs | None = None,
    fpr: float = 0.05,
    bins: int = 10,
) -> pd.DataFrame:
    """Leakage per mem-score decile of the victim's members (inherent memorability, spec §1).

    For each attack, members are split into ``bins`` quantile bins of their mem-score
    (``memscore`` indexed by pool row; ``victim`` defaults to the one :func:`evaluate` attached
    to ``attacks.attrs``). Per bin: the TPR at ``fpr`` (threshold set on all
    non-members) and the *member accuracy*: the fraction of the bin the attack's own decision rule
    calls a member (NaN for LiRA, which has no decision rule).
    """
    victim = victim if victim is not None else attacks.attrs["victim"]
    m = memscore[victim.rows_in]
    edges = np.quantile(m, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, m, side="right") - 1, 0, bins - 1)
    rows = []
    for name in attacks.attack:
        s_in, s_out = attacks.attrs["scores"][name]
        s_in, s_out = np.asarray(s_in), np.asarray(s_out)
        cut = 0.5 if FAMILY.get(name) == "classifier" else 0.0
        for b in range(bins):
            sel = which == b
            rows.append(
                {
                    "attack": name,
                    "bin": b,
                    "memscore_mean": float(m[sel].mean()) if sel.any() else float("nan"),
                    "tpr_at_fpr": tpr_at_fpr(s_in[sel], s_out, fpr) if sel.any() else float("nan"),
                    "member_accuracy": float((s_in[sel] >= cut).mean())
                    if FAMILY.get(name) != "lira" and sel.any()
                    else float("nan"),
                    "n": int(sel.sum()),
                }
            )
    return pd.DataFrame(rows)
