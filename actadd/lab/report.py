"""``actadd report``: every claim of every run under ``results/``, from the saved tables.

Writes ``<results>/claims.csv`` (one row per claim, full precision) and
``<results>/REPORT.md`` (confirmatory claims first, then each experiment's scans with the
number of cells scanned and those that survive Benjamini–Hochberg at q = 0.05). Where
``<results>/<model>/claims.csv`` holds another model's report (runs made with ``--model``),
REPORT.md gets a section "Replication on <model>" and ``<results>/replication.csv`` one row per
claim matched across the two (:mod:`actadd.lab.replication`). Nothing
here runs a model: a report can be regenerated from a results tree anywhere.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from actadd.errors import ConfigError
from actadd.lab.cite import family_alias
from actadd.lab.claims import (
    CONDITIONAL,
    DECISION_RULE,
    MIN_EQUIVALENCE_PROMPTS,
    SENSITIVITY,
    SUPPORTED,
    Claim,
    adjust,
    table,
)
from actadd.lab.replication import (
    INCONCLUSIVE,
    MODEL_SPECIFIC,
    REPLICATED,
    VERDICT_RULE,
    Replication,
    other_models,
    replicate_folders,
)

__all__ = [
    "collect",
    "fnum",
    "fp",
    "read_claims",
    "render",
    "replication_section",
    "replications",
    "sensitivity_section",
    "stale_runs",
    "stale_section",
    "write_report",
]


def collect(results: Path) -> tuple[list[Claim], list[dict]]:
    """The adjusted claims of every run directory under ``results`` (suite order first),
    and one provenance row per run. Each run is checked first (``actadd verify``): a
    damaged, incomplete or edited run is one ConfigError line naming it."""
    from actadd.errors import ActAddError
    from actadd.lab.runner import check_run, kind_of
    from actadd.lab.runs import RunDir, run_dirs

    runs = run_dirs(results)
    if not runs:
        raise ConfigError(f"No run directories (with config.json) under {results}.")
    order = _suite_order(results)
    runs.sort(key=lambda r: (order.get(r.name, len(order)), r.name))
    claims: list[Claim] = []
    prov = []
    for out in runs:
        run = RunDir.existing(out)
        try:
            kind = kind_of(run.config)
        except ConfigError as exc:
            raise ConfigError(f"{out / 'config.json'}: {exc}") from None
        check_run(run)
        env = run.env()
        try:
            claims += kind.claims(run)
        except ActAddError:
            raise
        except Exception as exc:  # tables that do not fit the config's kind
            detail = (str(exc).splitlines() or [""])[0][:120]
            raise ConfigError(
                f"{out}: cannot compute its claims ({type(exc).__name__}: {detail}): its "
                f"tables do not fit its config (kind {kind.name!r}; was config.json edited?)."
            ) from None
        model = env.get("model") if isinstance(env.get("model"), dict) else {}
        prov.append(
            dict(
                run=out.name,
                kind=run.config.get("kind"),
                revision=env.get("git_revision"),
                model=model.get("name"),
                quantization=model.get("quantization"),
                model_sha256=(model.get("model_sha256") or "")[:12],
                **_compute(run),
            )
        )
    return adjust(claims), prov


def _compute(run) -> dict[str, float | None]:
    """The run's wall and CPU seconds summed over its starts (``tables.json``'s
    ``compute``; None for a run made before it was recorded)."""
    segments = (run._read_manifest() or {}).get("compute") or []
    if not isinstance(segments, list) or not all(isinstance(x, dict) for x in segments):
        segments = []  # not a record this actadd wrote: shown as none
    if not segments:
        return dict(wall_s=None, cpu_s=None)
    return dict(
        wall_s=sum(float(s.get("wall_s") or 0) for s in segments),
        cpu_s=sum(float(s.get("cpu_s") or 0) for s in segments),
    )


def _suite_order(results: Path) -> dict[str, int]:
    """Run order: the main suite's experiments (``suite.json``), then those of any other
    suite record (``<suite>.json`` with an ``experiments`` list)."""
    names: list[str] = []
    records = [results / "suite.json"] + sorted(
        p for p in results.glob("*.json") if p.name not in ("suite.json",)
    )
    for record in records:
        if record.exists():
            try:
                doc = json.loads(record.read_text())
            except ValueError:
                continue
            if isinstance(doc, dict) and isinstance(doc.get("experiments"), list):
                names += [n for n in doc["experiments"] if n not in names]
    return {n: i for i, n in enumerate(names)}


def _seconds(p: dict) -> str:
    if p.get("wall_s") is None:
        return "—"
    return f"{p['wall_s']:,.0f} ({p['cpu_s']:,.0f})"


def fnum(x: float, digits: int = 2) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:+.{digits}f}" if x != 0 else f"{0:.{digits}f}"


def fp(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "n/a"
    return f"{p:.2g}" if p >= 1e-4 else "<1e-4"


def _row(c: Claim) -> str:
    est = f"{fnum(c.estimate)} [{fnum(c.lo)}, {fnum(c.hi)}]"
    return (
        f"| `[{c.cite}]` | {c.statement} | {est} | {c.numbers} | {c.test} | {fp(c.p)} "
        f"| {fp(c.p_adj)} | {c.n} | **{c.verdict}** |"
    )


HEAD = (
    "| id | claim | estimate [95% CI] | numbers | test | p | p (BH) | n | verdict |\n"
    "|---|---|---|---|---|---|---|---|---|"
)
CONF_HEAD = "| experiment " + HEAD.replace("\n", "\n|---")


def render(claims: list[Claim], prov: list[dict], results: Path) -> str:
    lines = [
        "# Report: every claim, computed from the saved tables",
        "",
        f"Generated by `actadd report --results {results}` from the tables alone.",
        "",
        f"**Decision rule.** {DECISION_RULE}",
        "",
        "Estimates are differences from unsteered (fractions, VADER points, nats, or "
        "similarities) unless the claim says otherwise; intervals are 95%. Confirmatory cells "
        "were fixed in the configs before their data was collected; scans are exploratory.",
        "",
        "**Citing claims.** Each claim has a short id (first column; the `cite` column of "
        "claims.csv) and each family one too (`[<experiment>/<family>]`, after its heading); "
        "the findings pages cite them, and a test checks every cited number and verdict "
        "against the claim.",
        "",
        "## Runs",
        "",
        "| run | kind | revision | model | quantization | model sha256 | wall s (CPU s) |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {p['run']} | {p['kind']} | {p['revision']} | {p['model']} | {p['quantization']} "
        f"| {p['model_sha256']} | {_seconds(p)} |"
        for p in prov
    ]
    timed = [p for p in prov if p.get("wall_s") is not None]
    lines += [
        "",
        f"Compute (`tables.json`'s `compute`, every start of a run summed): {len(timed)} of "
        f"{len(prov)} runs record it"
        + (
            f"; together {sum(p['wall_s'] for p in timed):,.0f} s wall, "
            f"{sum(p['cpu_s'] for p in timed):,.0f} s CPU."
            if timed
            else " (runs made before it was recorded show —)."
        ),
    ]
    lines += stale_section(results)
    conf = [c for c in claims if c.confirmatory]
    if conf:
        lines += [
            "",
            "## Confirmatory claims",
            "",
            "Benjamini–Hochberg within each experiment's confirmatory cells (cited as a "
            "family: `[wc3/confirmatory]`).",
            "",
            CONF_HEAD,
        ]
        lines += [f"| {c.experiment} {_row(c)}" for c in conf]
        lines += sensitivity_section(conf)
    for rep in replications(claims, results):
        lines += replication_section(rep, results)
    by_exp: dict[str, list[Claim]] = {}
    for c in claims:
        if not c.confirmatory:
            by_exp.setdefault(c.experiment, []).append(c)
    for exp, cs in by_exp.items():
        lines += ["", f"## {exp}"]
        fams: dict[str, list[Claim]] = {}
        for c in cs:
            fams.setdefault(c.family or "single claims", []).append(c)
        for fam, fc in fams.items():
            ok = [c for c in fc if c.verdict == SUPPORTED]
            cond = [c for c in fc if c.verdict == CONDITIONAL]
            cite = f" `[{family_alias(exp, fam)}]`" if fam != "single claims" else ""
            lines += ["", f"### {fam}: {len(ok)} of {len(fc)} supported{cite}"]
            lines += _family_notes(fc, cond)
            lines += ["", HEAD]
            shown = (
                fc if len(fc) <= 24 else [c for c in fc if c.verdict in (SUPPORTED, CONDITIONAL)]
            )
            lines += [_row(c) for c in shown]
            if len(shown) < len(fc):
                lines += [
                    "",
                    f"({len(fc) - len(shown)} NOT SUPPORTED claims of this family are in "
                    "claims.csv.)",
                ]
    return "\n".join(lines) + "\n"


SENS_HEAD = (
    "| experiment | id | estimate [95% CI] | p (two-sided) | p (BH) | verdict "
    "| one-sided p | one-sided p (BH) | rule one-sided |\n|---|---|---|---|---|---|---|---|---|"
)


def sensitivity_section(conf: list[Claim]) -> list[str]:
    """REPORT.md's one-sided sensitivity analysis of the confirmatory claims tested two-sided
    (nothing when there are none): a table beside their verdicts, which it does not change."""
    two = [c for c in conf if math.isfinite(c.sensitivity_p_one_sided)]
    if not two:
        return []
    met = sum(c.sensitivity_one_sided_rule == "met" for c in two)
    lines = ["", "### Sensitivity: one-sided, not a verdict", "", SENSITIVITY, ""]
    lines += [
        f"{len(two)} confirmatory claims were tested two-sided; {met} of {len(two)} would meet "
        "the rule one-sided. Their verdicts are the table's above.",
        "",
        SENS_HEAD,
    ]
    lines += [
        f"| {c.experiment} | `[{c.cite}]` | {fnum(c.estimate)} [{fnum(c.lo)}, {fnum(c.hi)}] "
        f"| {fp(c.p)} | {fp(c.p_adj)} | {c.verdict} | {fp(c.sensitivity_p_one_sided)} "
        f"| {fp(c.sensitivity_p_one_sided_bh)} | {c.sensitivity_one_sided_rule} |"
        for c in two
    ]
    return lines


def replications(claims: list[Claim], results: str | Path) -> list[Replication]:
    """This report's claims replicated on each other model with a report under ``results``
    (``results/<model>/claims.csv``, from runs made with ``--model``), one each."""
    base = table(claims)
    return [replicate_folders(results, d, base_claims=base) for d in other_models(results)]


REP_HEAD = (
    "| id | experiment | {a} claim | {b} claim | {a}: estimate [95% CI] | {a}: verdict "
    "| {b}: estimate [95% CI] | {b}: verdict | replication |\n|---|---|---|---|---|---|---|---|---|"
)


def replication_section(rep: Replication, results: str | Path) -> list[str]:
    """REPORT.md's "Replication on <model>": the confirmatory rows of ``rep`` with the verdict
    counts in the heading (citable: ``[rep.<model>]``, a row ``[rep.<model>.<claim id>]``),
    the counts per confirmatory family, and the exploratory families' counts only."""
    a, b = rep.base, rep.other
    n = rep.counts()
    conf = rep.rows[rep.rows.confirmatory]
    lines = [
        "",
        f"## Replication on {b}: {n[REPLICATED]} {REPLICATED}, {n[MODEL_SPECIFIC]} "
        f"{MODEL_SPECIFIC}, {n[INCONCLUSIVE]} {INCONCLUSIVE} of {len(conf)} confirmatory "
        f"claims `[rep.{b}]`",
        "",
        f"The confirmatory claims above ({a}) matched to the same claims on {b} "
        f"(`{Path(results) / b}/`, the same experiments run with `--model {b}`): the layers "
        "through each run's recorded layer mapping (`model_rule` in its config.json: relative "
        "depth), the coefficients as written or, where a run's per-model table mapped them "
        "(`model_rule.overrides.coeffs`), paired by their place in the list, the labels "
        "compared without their spelling. "
        f"Each model's estimate, interval and verdict are its own report's. {VERDICT_RULE}",
        "",
        f"A row is cited as `[rep.{b}.<this report's id>]`. Every matched claim, the "
        "exploratory ones too, is a row of `replication.csv`.",
        "",
        REP_HEAD.format(a=a, b=b),
    ]
    lines += [
        f"| `[{r.cite}]` | {r.experiment} | `[{r.base_cite}]` | `[{r.other_cite}]` "
        f"| {_est(r.base_estimate, r.base_lo, r.base_hi)} | {r.base_verdict} "
        f"| {_est(r.other_estimate, r.other_lo, r.other_hi)} | {r.other_verdict} "
        f"| **{r.replication}** ({r.why}) |"
        for r in conf.itertuples(index=False)
    ]
    fams = rep.families
    counts = f"| {REPLICATED} | {MODEL_SPECIFIC} | {INCONCLUSIVE} | only on {a} | only on {b} |"
    lines += [
        "",
        f"### Confirmatory families on {b}",
        "",
        f"| family | rows {counts}",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| `[rep.{b}/{f.cite}]` | {f.rows} | {f.replicated} | {f['model-specific']} "
        f"| {f.inconclusive} | {f.only_base} | {f.only_other} |"
        for _, f in fams[fams.confirmatory].iterrows()
    ]
    lines += [
        "",
        f"### Exploratory families on {b} (counts only)",
        "",
        "Scan cells: small n, chosen from many, BH within each family; not confirmatory, and "
        "not in the counts above. A family not run on one model has no rows. Where the "
        f"layer mapping merges two layers of {a} into one of {b}, the rows share that claim "
        f"({int((rep.rows.shared > 1).sum())} rows do).",
        "",
        f"| family | {a}: supported | {b}: supported | rows {counts}",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| `[rep.{b}/{f.cite}]` | {f.base_supported} of {f.base_claims} "
        f"| {f.other_supported} of {f.other_claims} | {f.rows} | {f.replicated} "
        f"| {f['model-specific']} | {f.inconclusive} | {f.only_base} | {f.only_other} |"
        for _, f in fams[~fams.confirmatory].iterrows()
    ]
    stale = sorted(
        (set(stale_runs(results)) | set(stale_runs(Path(results) / b))) & set(rep.rows.experiment)
    )
    if stale:
        lines += ["", f"Rows from runs listed as stale above: {', '.join(stale)}."]
    return lines


def _est(x: float, lo: float, hi: float) -> str:
    return f"{fnum(x)} [{fnum(lo)}, {fnum(hi)}]"


def _family_notes(fc: list[Claim], cond: list[Claim]) -> list[str]:
    """The lines under a family's heading that say which of its claims got no full verdict:
    those conditional on one prompt, and the equivalence claims on too few prompts."""
    out = []
    if cond:
        out += [
            "",
            f"{len(cond)} more pass on their one prompt: {CONDITIONAL}. A test over the "
            "samples of one prompt says nothing about other prompts.",
        ]
    refused = [c for c in fc if c.verdict.startswith("NOT ASSESSED")]
    if refused:
        ks = sorted({c.clusters for c in refused})
        out += [
            "",
            f"{len(refused)} equivalence verdicts NOT ASSESSED: they rest on "
            f"{'/'.join(map(str, ks))} prompts, and an equivalence verdict needs at least "
            f"{MIN_EQUIVALENCE_PROMPTS}.",
        ]
    return out


def stale_runs(results: str | Path = "results") -> dict[str, dict]:
    """The committed runs whose experiment config changed after they ran, each waiting for a
    rerun: ``<results>/STALE.toml``, one table per run with ``since`` (the commit that
    changed the config) and ``reason``. ``tests/unit/studies/test_configs.py`` checks that
    the list is exact (every listed run differs from its shipped config, every other run
    matches it), so a run cannot be silently out of date, nor stay listed after its rerun."""
    from actadd.config import read_toml

    path = Path(results) / "STALE.toml"
    return read_toml(path, "stale-runs file") if path.is_file() else {}


def stale_section(results: str | Path) -> list[str]:
    """REPORT.md's warning about :func:`stale_runs` (nothing when there are none)."""
    stale = stale_runs(results)
    if not stale:
        return []
    lines = [
        "",
        "## Stale runs (rerun pending)",
        "",
        "These runs were made with an earlier version of their experiment config; their claims "
        "below are the earlier design's, not what the shipped config measures:",
        "",
    ]
    return lines + [
        f"- **{run}** (config changed at {info.get('since', '?')}): {info.get('reason', '')}"
        for run, info in stale.items()
    ]


def write_report(results: str | Path = "results") -> tuple[Path, Path]:
    from actadd.errors import DiskFullError
    from actadd.lab.runinfo import write_table, write_text

    results = Path(results)
    claims, prov = collect(results)
    reps = replications(claims, results)  # a bad layer-mapping record fails before any write
    try:
        csv = write_table(results / "claims.csv", table(claims))
        if reps:
            write_table(results / "replication.csv", pd.concat([r.rows for r in reps]))
        md = write_text(results / "REPORT.md", render(claims, prov, results))
    except DiskFullError as exc:
        raise DiskFullError(f"{exc}; free space and rerun actadd report") from None
    return md, csv


def read_claims(results: str | Path = "results") -> pd.DataFrame:
    return pd.read_csv(Path(results) / "claims.csv")
