"""The replication table: each claim of one model's results matched to the same claim on
another model, and a replication verdict per pair.

``results/`` holds one model's runs (the *base*: SmolLM2-135M-Instruct for the committed
suite); ``results/<model>/`` holds the same experiments run with ``--model <model>``
(:mod:`actadd.lab.retarget`), each run's ``config.json`` recording its layer mapping in
``model_rule``. Nothing here loads a model or imports torch: the table is a function of the two
folders' ``claims.csv`` (the base's may be passed in memory) and the runs' configs.

**Matching.** A claim's id is ``:``-separated parts (``topic_any:' weddings' − '':L16:c1:front``).
Two claims are the same claim when they have the same experiment and family and the same parts
after (1) each layer part ``L<k>`` of the base claim is replaced by the layer its run's
``model_rule`` maps ``k`` to (``L-1``, no layer, stays), and (2) every other part is made a slug
(:func:`actadd.lab.cite.slug`), so labels whose spelling changed between revisions
(``'Love'-'Hate'`` and ``Love − Hate``) are one label. Coefficients are compared as written (the
rule leaves them unchanged), except in a run whose per-model table replaced its coefficient list
(``actadd coeffs``: ``model_rule.overrides.coeffs``), where the two lists pair by position.
Where the rule merges two base layers into one (L1 and L2 of 30 both become L1 of 18), each
base claim is a row and the other model's claim is shared by those rows (``shared``): they are
not independent evidence. A claim with no partner is not a row; it
is counted per family (``only on <model>``).

The layer map of a run is read from its record (:func:`layer_map`): a recorded pair is taken as
written where it can be read pair by pair (a single layer, or two lists of one length), and by
the recorded rule where the rule dropped repeats; a record that disagrees with the rule it names
is one :class:`ConfigError` line, so a wrong mapping cannot silently pair the wrong layers. A
base layer recorded with two targets (a per-model override) is left unmatched.

**Verdicts** (:data:`VERDICT_RULE` states them for REPORT.md; "supported" is the verdict
``SUPPORTED`` exactly, so ``SUPPORTED (conditional on one prompt)`` and ``NOT ASSESSED`` are not):

- ``replicated``: SUPPORTED on both models, in the same direction;
- ``model-specific``: SUPPORTED on exactly one model, and that model's 95% interval excludes
  the other model's estimate; or SUPPORTED on both in opposite directions;
- ``inconclusive``: everything else: SUPPORTED on neither; SUPPORTED on one whose interval
  contains the other's estimate (the other may only lack power); SUPPORTED on one that has no
  interval, or with the other's estimate missing.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from actadd.config import parse_layers
from actadd.errors import ConfigError
from actadd.lab.cite import abbreviation, slug
from actadd.lab.retarget import RULE as DEPTH_RULE
from actadd.lab.retarget import RULE_KEY, canonical_model, map_layer

__all__ = [
    "INCONCLUSIVE",
    "MODEL_SPECIFIC",
    "REPLICATED",
    "SUPPORTED",
    "VERDICTS",
    "VERDICT_RULE",
    "Replication",
    "claim_key",
    "coeff_map",
    "layer_map",
    "other_models",
    "replicate",
    "replicate_folders",
    "run_coeff_maps",
    "replication_verdict",
    "run_layer_maps",
]

#: a claim's verdict when it holds (:data:`actadd.lab.claims.SUPPORTED`; not imported from
#: there, whose statistics import torch: this module reads tables only)
SUPPORTED = "SUPPORTED"
REPLICATED, MODEL_SPECIFIC, INCONCLUSIVE = "replicated", "model-specific", "inconclusive"
VERDICTS = (REPLICATED, MODEL_SPECIFIC, INCONCLUSIVE)
_LAYER = re.compile(r"L(-?\d+)")
#: a claim id's coefficient part, ``c<coeff:g>`` (``c4``, ``c0.5``, ``c-1``, ``c5.95``)
_COEFF = re.compile(r"c(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)")

#: the replication verdicts in words (REPORT.md's replication section); the rule of
#: :func:`replication_verdict`
VERDICT_RULE = (
    f"A claim is **{REPLICATED}** when it is SUPPORTED on both models in the same direction; "
    f"**{MODEL_SPECIFIC}** when it is SUPPORTED on exactly one model and that model's 95% "
    f"interval excludes the other model's estimate (or SUPPORTED on both in opposite "
    f"directions); **{INCONCLUSIVE}** otherwise: SUPPORTED on neither, or SUPPORTED on one "
    f"whose interval contains the other's estimate (the other may only lack power), or on one "
    f"without an interval. SUPPORTED means that verdict exactly: a claim SUPPORTED "
    f"conditional on one prompt, or NOT ASSESSED, is not."
)


def replication_verdict(a: Any, b: Any, names: tuple[str, str] = ("A", "B")) -> tuple[str, str]:
    """(verdict, why) for one claim on two models, by :data:`VERDICT_RULE`. ``a`` and ``b``
    are rows of a claims table (``estimate``, ``lo``, ``hi``, ``sign``, ``margin``,
    ``verdict``); the why names their models ``names``."""
    sa, sb = a.verdict == SUPPORTED, b.verdict == SUPPORTED
    if sa and sb:
        equivalence = _finite(a.margin) and _finite(b.margin)
        if equivalence or (int(a.sign) == int(b.sign) and _same_sign(a.estimate, b.estimate)):
            return REPLICATED, "supported on both"
        return MODEL_SPECIFIC, "supported on both, in opposite directions"
    if not (sa or sb):
        return INCONCLUSIVE, "supported on neither"
    yes, no, name = (a, b, names[0]) if sa else (b, a, names[1])
    if not (_finite(yes.lo) and _finite(yes.hi)):
        return INCONCLUSIVE, f"supported on {name} only, without an interval"
    if not _finite(no.estimate):
        return INCONCLUSIVE, f"supported on {name} only; no estimate on the other"
    if yes.lo <= no.estimate <= yes.hi:
        return INCONCLUSIVE, f"supported on {name} only; its interval holds the other's estimate"
    return MODEL_SPECIFIC, f"supported on {name} only; its interval excludes the other's estimate"


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _same_sign(x: float, y: float) -> bool:
    return bool((x > 0 and y > 0) or (x < 0 and y < 0))


# ---------------------------------------------------------------------------- matching


def layer_map(rule: dict[str, Any], where: str = "model_rule") -> dict[int, int | None]:
    """{base layer: the other model's layer} from a run's recorded ``model_rule``; ``None``
    for a base layer recorded with two different targets. A record the map cannot be read
    from, or one that disagrees with the relative-depth rule it names, is a ConfigError."""
    try:
        depth, n = int(rule["from"]["n_layers"]), int(rule["to"]["n_layers"])
        fields = dict(rule.get("layers") or {})
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ConfigError(
            f"{where}: not a layer-mapping record (needs from.n_layers, to.n_layers, layers)."
        ) from None
    checked = rule.get("rule") == DEPTH_RULE
    overrides = rule.get("overrides") or {}
    found: dict[int, set[int]] = {}
    for field, rec in fields.items():
        if field in overrides and isinstance(rec, dict):
            # a per-model override replaced the mapped value: its layers are the target's own,
            # paired with the config's only where they can be read pair by pair
            pairs = _overridden(rec.get("from"), overrides[field].get("to"))
        else:
            pairs = _pairs(rec, depth, n, f"{where}: {field}")
        for a, b in pairs:
            if checked and field not in overrides and map_layer(a, depth, n) != b:
                raise ConfigError(
                    f"{where}: {field} records layer {a} -> {b}, but its rule maps {a} to "
                    f"{map_layer(a, depth, n)} ({depth} -> {n} layers): the record is wrong."
                )
            found.setdefault(a, set()).add(b)
    return {a: (next(iter(bs)) if len(bs) == 1 else None) for a, bs in found.items()}


def _overridden(src: Any, dst: Any) -> list[tuple[int, int]]:
    if isinstance(src, int) and isinstance(dst, int):
        return [(src, dst)]
    if isinstance(src, list) and isinstance(dst, list) and len(src) == len(dst):
        return list(zip(src, dst))
    return []


def _pairs(rec: Any, depth: int, n: int, where: str) -> list[tuple[int, int]]:
    """(base layer, other layer) pairs of one recorded field ``{"from": ..., "to": ...}``."""
    if not isinstance(rec, dict) or "from" not in rec or "to" not in rec:
        raise ConfigError(f"{where}: expected {{'from': ..., 'to': ...}}, got {rec!r}.")
    src, dst = rec["from"], rec["to"]
    if isinstance(src, str) and src.strip().lower() == "all":
        if not (isinstance(dst, str) and dst.strip().lower() == "all"):
            raise ConfigError(f"{where}: 'all' recorded as {dst!r}; 'all' maps to 'all'.")
        return [(a, map_layer(a, depth, n)) for a in range(depth)]
    if isinstance(src, int) and isinstance(dst, int):
        return [(src, dst)]
    if src == [] and dst == []:  # an empty layer list ("none") stays empty
        return []
    a_s = parse_layers(src, depth, where) if isinstance(src, (str, list)) else None
    b_s = dst if isinstance(dst, list) else None
    if a_s is None or b_s is None:
        raise ConfigError(f"{where}: cannot read the mapping {src!r} -> {dst!r}.")
    if len(a_s) == len(b_s):
        return list(zip(a_s, b_s))
    by_rule = [map_layer(a, depth, n) for a in a_s]
    if list(dict.fromkeys(by_rule)) != list(b_s):
        raise ConfigError(
            f"{where}: {src!r} -> {b_s!r} is neither pair by pair nor the rule's "
            f"{list(dict.fromkeys(by_rule))!r}: the record is wrong."
        )
    return list(zip(a_s, by_rule))


def run_layer_maps(results: str | Path, base_model: str) -> dict[str, dict[int, int | None]]:
    """{experiment: layer map} for the runs under ``results`` whose ``model_rule`` maps from
    ``base_model``; a run without one (or from another model) is left out, and its claims
    match nothing."""
    return {
        name: layer_map(rule, f"{cfg}: {RULE_KEY}")
        for name, cfg, rule in _mapped_runs(results, base_model)
    }


def _mapped_runs(results: str | Path, base_model: str):
    """(experiment, config.json path, ``model_rule``) of each run under ``results`` that the
    rule mapped from ``base_model``."""
    for cfg in sorted(Path(results).glob("*/config.json")):
        config = json.loads(cfg.read_text())
        rule = config.get(RULE_KEY)
        if not isinstance(rule, dict):
            continue
        if canonical_model((rule.get("from") or {}).get("model")) != base_model:
            continue
        yield config.get("name") or cfg.parent.name, cfg, rule


def claim_key(
    claim_id: str,
    layers: dict[int, int | None] | None = None,
    coeffs: dict[str, str] | None = None,
) -> tuple | None:
    """A claim id's parts as a matching key: layers mapped through ``layers`` (as written
    without one), coefficients through ``coeffs`` ({``"4"``: ``"5.95"``}, as written without
    one or for a coefficient it does not list), every other part a slug. ``None`` when a layer
    has no (unique) target."""
    parts = []
    for part in str(claim_id).split(":"):
        m = _LAYER.fullmatch(part)
        if m and layers is not None and int(m.group(1)) >= 0:
            to = layers.get(int(m.group(1)))
            if to is None:
                return None
            part = f"L{to}"
        c = _COEFF.fullmatch(part)
        if c and coeffs:
            part = f"c{coeffs.get(c.group(1), c.group(1))}"
        parts.append(part if (m or c) else slug(part))
    return tuple(parts)


def coeff_map(rule: dict[str, Any]) -> dict[str, str]:
    """{base coefficient: the other model's} from a run's ``model_rule``, where its per-model
    table replaced the coefficient list (``overrides.coeffs``: ``actadd coeffs``): the two lists
    paired by position, as the ids spell them (``:g``). Empty otherwise (coefficients as
    written), and where the lists differ in length or repeat a value (no pairing to read)."""
    rec = (rule.get("overrides") or {}).get("coeffs")
    if not isinstance(rec, dict):
        return {}
    src, dst = rec.get("from"), rec.get("to")
    if not (isinstance(src, list) and isinstance(dst, list) and len(src) == len(dst)):
        return {}
    try:
        a, b = [f"{float(x):g}" for x in src], [f"{float(x):g}" for x in dst]
    except (TypeError, ValueError):
        return {}
    if len(set(a)) != len(a) or len(set(b)) != len(b):
        return {}
    return dict(zip(a, b))


def run_coeff_maps(results: str | Path, base_model: str) -> dict[str, dict[str, str]]:
    """{experiment: :func:`coeff_map`} for the runs under ``results`` mapped from
    ``base_model`` whose per-model table mapped their coefficients."""
    maps = {name: coeff_map(rule) for name, _, rule in _mapped_runs(results, base_model)}
    return {name: m for name, m in maps.items() if m}


# ------------------------------------------------------------------------------- the table

_FIELDS = ("id", "cite", "estimate", "lo", "hi", "verdict", "sign", "margin", "confirmatory")


@dataclass(frozen=True)
class Replication:
    """The replication of ``base`` on ``other``: ``rows``, one per matched pair (each model's
    id, cite, estimate, interval and verdict, the replication verdict and why, and
    ``shared``, the number of rows that share the other model's claim), and ``families``,
    per experiment and family (claims and SUPPORTED on each model, matched rows, each
    verdict's count, and the claims on one model only)."""

    base: str
    other: str
    rows: pd.DataFrame
    families: pd.DataFrame

    def counts(self, confirmatory: bool = True) -> dict[str, int]:
        """How many rows (confirmatory ones by default) have each verdict."""
        rows = self.rows[self.rows.confirmatory == confirmatory]
        return {v: int((rows.replication == v).sum()) for v in VERDICTS}


def other_models(results: str | Path) -> list[Path]:
    """The folders under ``results`` holding another model's report (``claims.csv``)."""
    results = Path(results)
    if not results.is_dir():
        return []
    return sorted(
        d
        for d in results.iterdir()
        if d.is_dir() and (d / "claims.csv").is_file() and not d.name.startswith((".", "_"))
    )


def replicate(
    base_claims: pd.DataFrame,
    other_claims: pd.DataFrame,
    maps: dict[str, dict[int, int | None]],
    base: str,
    other: str,
    coeffs: dict[str, dict[str, str]] | None = None,
) -> Replication:
    """The replication table of two claims tables (``claims.csv``'s columns), matched through
    ``maps`` ({experiment: base layer -> other layer}, :func:`run_layer_maps`) and, where a
    run mapped its coefficients, ``coeffs`` ({experiment: base coefficient -> other's},
    :func:`run_coeff_maps`); an experiment without a layer map matches nothing."""
    coeffs = coeffs or {}
    okeys: dict[tuple, int] = {}
    for j, row in enumerate(other_claims.itertuples(index=False)):
        key = (row.experiment, _family(row.family), claim_key(row.id))
        if key in okeys:
            raise ConfigError(
                f"{other}: claims {other_claims.id.iloc[okeys[key]]!r} and {row.id!r} of "
                f"{row.experiment} read as one claim once their labels are made slugs."
            )
        okeys[key] = j
    pairs = []
    for i, row in enumerate(base_claims.itertuples(index=False)):
        layers = maps.get(row.experiment)
        key = None if layers is None else claim_key(row.id, layers, coeffs.get(row.experiment))
        j = okeys.get((row.experiment, _family(row.family), key)) if key is not None else None
        if j is not None:
            pairs.append((i, j))
    rows = [_row(base_claims.iloc[i], other_claims.iloc[j], (base, other)) for i, j in pairs]
    cols = ["experiment", "family"] + [f"{s}_{f}" for s in ("base", "other") for f in _FIELDS]
    cols += ["confirmatory", "replication", "why", "shared"]
    table = pd.DataFrame(rows, columns=cols)
    table["shared"] = table.groupby(["experiment", "other_id"]).other_id.transform("size")
    table["shared"] = table["shared"].astype(int)
    table.insert(0, "cite", [f"rep.{other}.{c}" for c in table.base_cite])
    table.insert(0, "other_model", other)
    table.insert(0, "base_model", base)
    matched_base = {i for i, _ in pairs}
    matched_other = {j for _, j in pairs}
    families = _families(base_claims, other_claims, table, matched_base, matched_other)
    return Replication(base, other, table, families)


def _family(x: Any) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else str(x)


def _row(a: pd.Series, b: pd.Series, names: tuple[str, str]) -> dict:
    verdict, why = replication_verdict(a, b, names)
    out = {"experiment": a.experiment, "family": _family(a.family)}
    for side, r in (("base", a), ("other", b)):
        out.update({f"{side}_{f}": r[f] for f in _FIELDS})
    out["confirmatory"] = bool(a.confirmatory) and bool(b.confirmatory)
    out.update(replication=verdict, why=why, shared=1)
    return out


def _families(base_claims, other_claims, table, matched_base, matched_other) -> pd.DataFrame:
    keys = list(
        dict.fromkeys(
            k
            for df in (base_claims, other_claims)
            for k in zip(df.experiment, df.family.map(_family))
        )
    )
    base_m = pd.Series([i in matched_base for i in range(len(base_claims))], dtype=bool)
    other_m = pd.Series([j in matched_other for j in range(len(other_claims))], dtype=bool)
    out = []
    for exp, fam in keys:
        bsel = (base_claims.experiment == exp).to_numpy() & (
            base_claims.family.map(_family) == fam
        ).to_numpy()
        osel = (other_claims.experiment == exp).to_numpy() & (
            other_claims.family.map(_family) == fam
        ).to_numpy()
        rows = table[(table.experiment == exp) & (table.family == fam)]
        conf = bool(base_claims.confirmatory[bsel].any() or other_claims.confirmatory[osel].any())
        rec = {
            "experiment": exp,
            "family": fam,
            "cite": f"{abbreviation(exp)}/{fam}" if fam else abbreviation(exp),
            "confirmatory": conf,
            "base_claims": int(bsel.sum()),
            "base_supported": int((base_claims.verdict[bsel] == SUPPORTED).sum()),
            "other_claims": int(osel.sum()),
            "other_supported": int((other_claims.verdict[osel] == SUPPORTED).sum()),
            "rows": len(rows),
        }
        rec.update({v: int((rows.replication == v).sum()) for v in VERDICTS})
        rec["only_base"] = int((~base_m[bsel]).sum())
        rec["only_other"] = int((~other_m[osel]).sum())
        out.append(rec)
    return pd.DataFrame(out)


def replicate_folders(
    base_results: str | Path, other_results: str | Path, base_claims: pd.DataFrame | None = None
) -> Replication:
    """:func:`replicate` of two results folders: ``base_results``' claims (``base_claims`` if
    given, else its ``claims.csv``) against ``other_results/claims.csv``, matched through the
    other folder's recorded layer mappings. The base model is the one its runs' configs name
    (SmolLM2 when they name none)."""
    base_results, other_results = Path(base_results), Path(other_results)
    if base_claims is None:
        base_claims = pd.read_csv(base_results / "claims.csv")
    other_claims = pd.read_csv(other_results / "claims.csv")
    base = _folder_model(base_results)
    maps = run_layer_maps(other_results, base)
    coeffs = run_coeff_maps(other_results, base)
    return replicate(base_claims, other_claims, maps, base, _folder_model(other_results), coeffs)


def _folder_model(results: Path) -> str:
    models = set()
    for cfg in sorted(results.glob("*/config.json")):
        name = json.loads(cfg.read_text()).get("model")
        try:
            models.add(canonical_model(name))
        except ConfigError:  # a model --model does not know (a path) is its own
            models.add(str(name))
    if len(models) != 1:
        raise ConfigError(
            f"{results}: its runs name {sorted(models) or 'no'} models; a replication compares "
            "one model's runs with another's."
        )
    return models.pop()
