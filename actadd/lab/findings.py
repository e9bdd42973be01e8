"""Findings prose checked claim by claim: every sentence cites a claim id, and what it says
next to the id is what the claim holds.

A findings block is the text between ``<!-- findings -->`` and ``<!-- /findings -->``. Each
bullet (or paragraph) is cut into sentences, and every sentence must cite at least one id in
square brackets (:mod:`actadd.lab.cite`): a claim (``[wc3.L16c1]``), a family
(``[ws/scan topic_any]``), a glob over claim ids (``[ppl.ppl_wedding.actadd.*]``,
``[ws.L1[0-2]c*]``: ``*``, ``?`` and ``[…]`` as in :mod:`fnmatch`), or several
joined by ``+``. A citation's **scope** is the text after it, up to the next citation or the
end of the sentence; the numbers a sentence states about a claim go there, in these patterns:

=================================  ==========================================================
pattern in the scope               checked against (one cited claim)
=================================  ==========================================================
``+0.07 [+0.02, +0.13]``           estimate, lo, hi, each to its printed precision, with its
                                   sign (an unsigned number is positive)
``−0.18`` (a lone signed decimal)  the estimate, the same way
``12/128 vs 3/128``, ``33 of 50``  must occur in the claim's ``numbers`` or ``n``
``p (BH) 0.047``                   the Benjamini–Hochberg adjusted p, to its printed digits
``one-sided p (BH) 0.031``         the one-sided sensitivity analysis's adjusted p
                                   (``sensitivity_p_one_sided_bh``), the same way
``32 prompts``                     the number of prompts the claim's evidence spans
``SUPPORTED``, ``NOT SUPPORTED``,  the verdict (``SUPPORTED (conditional on one prompt)`` must
``NOT ASSESSED``                   say so)
=================================  ==========================================================

A citation of several claims (a family, a glob, a union) is a quantified statement: each
``9 of 150``, ``0 of 4``, ``none of 22``, ``all 5`` in its scope must equal the number of
SUPPORTED claims among the cited ones and their total; a quantifier followed (before the
next one) by ``one-sided sensitivity`` and no verdict counts instead the cited claims that
would meet the rule one-sided (``sensitivity_one_sided_rule`` is ``met``): ``4 of 18 would
pass in the one-sided sensitivity analysis``. In a scope with no quantifier, a verdict
(``[a + b] (both NOT SUPPORTED)``) is said of every cited claim; each interval in the scope
must be one cited claim's estimate and interval, and each lone signed decimal one's estimate.

**Replication rows** (:mod:`actadd.lab.replication`, REPORT.md's "Replication on <model>") are
cited as ``[rep.<model>.<claim id>]`` (one row), ``[rep.<model>/<abbrev>/<family>]`` (a
family's rows) or ``[rep.<model>]`` (its confirmatory rows), when the replication table is
passed. In the scope of one row, each replication verdict named (``replicated``,
``model-specific``, ``inconclusive``) must be the row's; of several, ``3 of 26 replicated`` and
``5 model-specific`` must be the counts of rows with that verdict (and ``of 26`` their total).

Numbers outside these patterns (a model's size, a run's length) are not checked here.
:func:`check_findings` returns one line per problem, naming the sentence.
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass

import pandas as pd

from actadd.lab.cite import abbreviation

__all__ = ["Citation", "check_findings", "findings_blocks", "sentences"]

BLOCK = re.compile(r"<!-- findings -->(.*?)<!-- /findings -->", re.S)
_CITE = re.compile(r"\[([A-Za-z](?:[^\[\]]|\[[^\[\]]*\])*)\](?!\()")
_NUM = r"[+−-]?\d+(?:\.\d+)?"
_INTERVAL = re.compile(rf"({_NUM})\s*\[({_NUM}),\s*({_NUM})\]")
_SIGNED = re.compile(r"(?<![\w.])([+−]\d+\.\d+)(?![\d])")
_COUNTS = re.compile(
    r"(?<![\w.])(?:\d+/\d+(?: vs \d+/\d+)?|[+−-]?\d+(?:\.\d+)?%? vs [+−-]?\d+(?:\.\d+)?%?)(?![\w])"
)
_OF = re.compile(r"\b(\d+|no|none|all) of (?:the |its )?(\d+)\b", re.I)
_ALL_N = re.compile(r"\ball (\d+)\b", re.I)
_PV = r"(<1e-4|\d+(?:\.\d+)?(?:e-?\d+)?)"
_P_BH = re.compile(rf"(?<!one-sided )p \(BH\) {_PV}")
_P_BH_ONE = re.compile(rf"one-sided p \(BH\) {_PV}")
_SENSITIVITY = re.compile(r"one-sided sensitivity")
_SEPARATOR = re.compile(r"\|?(\s*:?-+:?\s*\|)+\s*:?-*:?\s*")
_PROMPTS = re.compile(r"\b(\d+) (?:\w+ )?prompts\b")
_VERDICT = re.compile(r"\b(NOT SUPPORTED|NOT ASSESSED|SUPPORTED)\b( \(conditional)?")
_REP_VERDICT = re.compile(r"\b(replicated|model-specific|inconclusive)\b")
_REP_COUNT = re.compile(r"(?<!of )\b(\d+|no|none) (replicated|model-specific|inconclusive)\b", re.I)


@dataclass(frozen=True)
class Citation:
    """One bracketed citation in a sentence: its text, the claims it names (rows of the
    claims table) and its scope (the text after it that speaks about them)."""

    text: str
    claims: pd.DataFrame
    scope: str
    #: the citation names rows of the replication table, not claims
    replication: bool = False

    @property
    def single(self) -> bool:
        return len(self.claims) == 1 and "/" not in self.text and "*" not in self.text


def findings_blocks(text: str) -> list[str]:
    return BLOCK.findall(text)


def sentences(block: str) -> list[str]:
    """The sentences of a findings block: bullets (``- ``), paragraphs and table rows (the
    header row and the ``|---|`` row are skipped; cells are joined with ``;``), each cut after
    ``.``, ``!`` or ``?`` where the next word starts a sentence. Inline code is kept (it may
    hold quotes and dashes, not claims), bold and italics markers are dropped."""
    items: list[str] = []
    lines = [line.strip() for line in block.splitlines()]
    for i, s in enumerate(lines):
        if s.startswith("|"):
            # a table row is an item of its own; the header (the row above |---|) and the
            # separator name columns, not claims
            header = i + 1 < len(lines) and _SEPARATOR.fullmatch(lines[i + 1])
            if not (header or _SEPARATOR.fullmatch(s)):
                items += [s.strip("| ").replace(" | ", "; "), ""]
            continue
        if not s:
            items.append("")
        elif s.startswith(("- ", "* ")) or not items:
            items.append(s[2:] if s.startswith(("- ", "* ")) else s)
        else:
            items[-1] = (items[-1] + " " + s).strip()
    out: list[str] = []
    for item in filter(None, items):
        item = re.sub(r"\*\*|__", "", item)
        out += [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"“`(*])", item) if s.strip()]
    return out


def _plain(text: str) -> str:
    return text.replace("−", "-")


def _number(text: str) -> float:
    return float(text.replace("−", "-").replace("+", ""))


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def _matches(printed: str, value: float) -> bool:
    """``printed`` is ``value`` at the precision it was printed with (sign included)."""
    if value is None or not math.isfinite(value):
        return False
    return abs(_number(printed) - value) <= 0.5 * 10 ** -_decimals(printed) * (1 + 1e-9)


def _p_matches(printed: str, p: float) -> bool:
    if not math.isfinite(p):
        return False
    if printed == "<1e-4":
        return p < 1e-4
    if "e" in printed:
        mant, exp = printed.split("e")
        step = 0.5 * 10 ** (int(exp) - _decimals(mant))
        return abs(float(printed) - p) <= step * (1 + 1e-9)
    return _matches(printed, p)


def _resolve_replication(term: str, rep: pd.DataFrame | None) -> pd.DataFrame | str:
    """The replication rows one ``rep.`` term names, or the reason it names none."""
    if rep is None or rep.empty:
        return f"[{term}] cites the replication table, and there is none"
    body = term[len("rep.") :]
    if "/" in body:
        model, family = body.split("/", 1)
        cites = rep.experiment.map(abbreviation) + "/" + rep.family.fillna("")
        sel = rep[(rep.other_model == model) & (cites == family)]
    elif body in set(rep.other_model):
        sel = rep[(rep.other_model == body) & rep.confirmatory.astype(bool)]
    else:
        sel = rep[rep.cite == term]
    return sel if len(sel) else f"no replication row or family [{term}] (see replication.csv)"


def _resolve(term: str, claims: pd.DataFrame) -> pd.DataFrame | str:
    """The claims one citation term names, or the reason it names none."""
    if "/" in term:
        abbrev, family = term.split("/", 1)
        abbrevs = claims.experiment.map(abbreviation)
        sel = claims[(abbrevs == abbrev) & (claims.family.fillna("") == family)]
        return sel if len(sel) else f"no family [{term}] (cite a family as [<abbrev>/<family>])"
    if any(ch in term for ch in "*?["):
        sel = claims[[fnmatch.fnmatchcase(c, term) for c in claims.cite]]
        return sel if len(sel) else f"the pattern [{term}] matches no claim id"
    sel = claims[claims.cite == term]
    return sel if len(sel) else f"unknown claim id [{term}] (ids: claims.csv's cite column)"


def _uncode(sentence: str) -> str:
    """The sentence with its inline code blanked: pair labels and file names hold no citation
    and no claim's number."""
    return re.sub(r"`[^`]*`", lambda m: " " * len(m.group()), sentence)


def _orphans(sentence: str) -> list[str]:
    """A claim's numbers stated before the sentence's first citation (they would be checked
    against nothing)."""
    text = _uncode(sentence)
    first = _CITE.search(text)
    head = text[: first.start()] if first else ""
    found = [
        m.group(0)
        for rx in (_INTERVAL, _COUNTS, _P_BH, _P_BH_ONE, _OF, _VERDICT)
        for m in rx.finditer(head)
    ]
    found += [m.group(1) for m in _SIGNED.finditer(_COUNTS.sub(" ", _INTERVAL.sub(" ", head)))]
    return [
        f"{x.strip()!r} comes before the sentence's first citation: state a claim's numbers "
        f"after its id"
        for x in found
    ]


def citations(
    sentence: str, claims: pd.DataFrame, replication: pd.DataFrame | None = None
) -> tuple[list[Citation], list[str]]:
    """The citations of one sentence and the problems resolving them."""
    sentence = _uncode(sentence)
    found = list(_CITE.finditer(sentence))
    out, problems = [], []
    for i, m in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(sentence)
        terms = [t.strip() for t in m.group(1).split(" + ")]
        if all(t.startswith("rep.") for t in terms):
            sel = [_resolve_replication(t, replication) for t in terms]
            problems += [s for s in sel if isinstance(s, str)]
            rows = [s for s in sel if not isinstance(s, str)]
            if rows:
                rows = pd.concat(rows).drop_duplicates(["other_model", "cite"])
                out.append(Citation(m.group(1), rows, sentence[m.end() : end], True))
            continue
        parts = []
        for term in terms:
            sel = _resolve(term, claims)
            if isinstance(sel, str):
                problems.append(sel)
            else:
                parts.append(sel)
        if parts:
            sel = pd.concat(parts).drop_duplicates(["experiment", "id"])
            out.append(Citation(m.group(1), sel, sentence[m.end() : end]))
    return out, problems


def _check_one(c: Citation) -> list[str]:
    row = c.claims.iloc[0]
    cite, problems = row.cite, []
    scope = c.scope
    held = _plain(f"{row.numbers} ; {row.n}")
    for m in _INTERVAL.finditer(scope):
        if _plain(m.group(0)) in held:  # a derived value the claim states (a ratio)
            continue
        for printed, field in zip(m.groups(), ("estimate", "lo", "hi")):
            if not _matches(printed, float(row[field])):
                problems.append(
                    f"[{cite}]: {field} {printed} in {m.group(0)!r}, the claim has "
                    f"{float(row[field]):+.4g}"
                )
    rest = _COUNTS.sub(" ", _INTERVAL.sub(" ", scope))
    for m in _SIGNED.finditer(rest):
        if not _matches(m.group(1), float(row.estimate)):
            problems.append(
                f"[{cite}]: estimate {m.group(1)}, the claim has {float(row.estimate):+.4g}"
            )
    for m in list(_COUNTS.finditer(scope)) + list(_OF.finditer(scope)):
        if _plain(m.group(0)) not in held:
            problems.append(f"[{cite}]: {m.group(0)!r} is not in the claim's numbers ({held})")
    for m in _P_BH.finditer(scope):
        if not _p_matches(m.group(1), float(row.p_adj)):
            problems.append(f"[{cite}]: p (BH) {m.group(1)}, the claim has {row.p_adj:.3g}")
    for m in _P_BH_ONE.finditer(scope):
        one = float(row.get("sensitivity_p_one_sided_bh", math.nan))
        if not _p_matches(m.group(1), one):
            has = f"{one:.3g}" if math.isfinite(one) else "none (its test was not two-sided)"
            problems.append(f"[{cite}]: one-sided p (BH) {m.group(1)}, the claim has {has}")
    for m in _PROMPTS.finditer(scope):
        k = pd.to_numeric(row.get("clusters"), errors="coerce")
        if not (math.isfinite(k) and int(m.group(1)) == int(k)):
            spans = f"{int(k)} prompts" if math.isfinite(k) else "no prompts (its unit is not one)"
            problems.append(f"[{cite}]: {m.group(0)!r}, but the claim spans {spans}")
    for m in _VERDICT.finditer(scope):
        stated = m.group(1) + (" (conditional on one prompt)" if m.group(2) else "")
        verdict = str(row.verdict)
        same = verdict == stated if stated.startswith("SUPPORTED") else verdict.startswith(stated)
        if not same:
            problems.append(f"[{cite}]: the sentence says {stated}, the claim is {verdict}")
    return problems


def _check_set(c: Citation) -> list[str]:
    """Each quantifier in the scope counts the claims with the verdict named after it (up to
    the next quantifier; SUPPORTED when it names none) among all the cited claims."""
    total = len(c.claims)
    found = [(m, m.group(1).lower(), m.group(2)) for m in _OF.finditer(c.scope)]
    found += [(m, "all", m.group(1)) for m in _ALL_N.finditer(c.scope)]
    found.sort(key=lambda f: f[0].start())
    problems = []
    for i, (m, k, n) in enumerate(found):
        upto = found[i + 1][0].start() if i + 1 < len(found) else len(c.scope)
        named = _VERDICT.search(c.scope, m.end(), upto)
        verdict = named.group(1) if named and named.group(1) != "SUPPORTED" else "SUPPORTED"
        have = int(c.claims.verdict.astype(str).str.startswith(verdict).sum())
        if verdict == "SUPPORTED":
            have = int((c.claims.verdict == "SUPPORTED").sum())
        if not named and _SENSITIVITY.search(c.scope, m.end(), upto):
            verdict = "met one-sided (sensitivity)"
            rule = c.claims.get("sensitivity_one_sided_rule")
            have = 0 if rule is None else int((rule == "met").sum())
        k = {"no": 0, "none": 0, "all": int(n)}.get(k, k)
        if int(k) != have or int(n) != total:
            problems.append(
                f"[{c.text}]: {m.group(0)!r}, but {have} of its {total} claims are {verdict}"
            )
    # with no quantifier in the scope, a verdict it names is said of every cited claim
    for m in _VERDICT.finditer(c.scope) if not found else ():
        stated = m.group(1) + (" (conditional on one prompt)" if m.group(2) else "")
        verdicts = c.claims.verdict.astype(str)
        exact = stated.startswith("SUPPORTED")
        held = verdicts == stated if exact else verdicts.str.startswith(stated)
        if not held.all():
            problems.append(
                f"[{c.text}]: the sentence says {stated} of all {total}, but "
                f"{int((~held).sum())} of them are not"
            )
    # each interval, and each lone signed decimal, is some cited claim's estimate
    estimates = [float(v) for v in c.claims.estimate]
    held_numbers = [_plain(f"{row.numbers} ; {row.n}") for _, row in c.claims.iterrows()]
    for m in _INTERVAL.finditer(c.scope):
        fields = ("estimate", "lo", "hi")
        if not any(
            all(_matches(x, float(row[f])) for x, f in zip(m.groups(), fields))
            or _plain(m.group(0)) in held  # a derived value the claim states (a ratio)
            for (_, row), held in zip(c.claims.iterrows(), held_numbers)
        ):
            problems.append(f"[{c.text}]: {m.group(0)!r} is no cited claim's estimate and interval")
    for m in _SIGNED.finditer(_COUNTS.sub(" ", _INTERVAL.sub(" ", c.scope))):
        if not any(_matches(m.group(1), e) for e in estimates):
            problems.append(f"[{c.text}]: {m.group(1)} is no cited claim's estimate")
    return problems


def _check_replication(c: Citation) -> list[str]:
    """The replication verdicts and counts a citation of replication rows states."""
    rows, problems = c.claims, []
    if len(rows) == 1 and "/" not in c.text and c.text.count(".") > 1:
        have = rows.replication.iloc[0]
        for m in _REP_VERDICT.finditer(c.scope):
            if m.group(1) != have:
                problems.append(f"[{c.text}]: the sentence says {m.group(1)}, the row is {have}")
        return problems
    quants = list(_OF.finditer(c.scope))
    for i, m in enumerate(quants):
        upto = quants[i + 1].start() if i + 1 < len(quants) else len(c.scope)
        named = _REP_VERDICT.search(c.scope, m.end(), upto)
        k = {"no": 0, "none": 0, "all": m.group(2)}.get(m.group(1).lower(), m.group(1))
        have = int((rows.replication == named.group(1)).sum()) if named else int(k)
        if int(k) != have or int(m.group(2)) != len(rows):
            what = named.group(1) if named else "cited"
            problems.append(
                f"[{c.text}]: {m.group(0)!r}, but {have} of its {len(rows)} rows are {what}"
            )
    for m in _REP_COUNT.finditer(c.scope):
        k = {"no": 0, "none": 0}.get(m.group(1).lower(), m.group(1))
        have = int((rows.replication == m.group(2).lower()).sum())
        if int(k) != have:
            problems.append(f"[{c.text}]: {m.group(0)!r}, but {have} of its rows are {m.group(2)}")
    return problems


def check_findings(
    text: str, claims: pd.DataFrame, replication: pd.DataFrame | None = None
) -> list[str]:
    """Problems with the findings blocks of a page (``text``) against the claims table
    (``claims.csv``'s columns, ``cite`` included) and, for ``[rep.…]`` citations, the
    replication table (``replication.csv``'s columns): one line each, naming the sentence."""
    blocks = findings_blocks(text)
    if not blocks:
        return ["no <!-- findings --> … <!-- /findings --> block"]
    problems = []
    for block in blocks:
        for s in sentences(block):
            where = f"{s[:70]}…" if len(s) > 70 else s
            cites, bad = citations(s, claims, replication)
            bad += _orphans(s) if cites else []
            if not cites and not bad:
                problems.append(f"uncited sentence: {where!r}")
            for c in cites:
                if c.replication:
                    bad += _check_replication(c)
                else:
                    bad += _check_one(c) if c.single else _check_set(c)
            problems += [f"{p} (in {where!r})" for p in bad]
    return problems
