"""Build actadd/data/austen_sentences.json: held-out, human-written sentences for the
perplexity experiment, grouped by how much they are about weddings.

Source: the Debian package r-cran-janeaustenr 1.0.0-1 (bookworm/main; MIT-licensed R
package by Julia Silge holding the Project Gutenberg texts of Jane Austen's six novels,
which are in the public domain). The .deb is fetched from deb.debian.org and checked
against its sha256; the texts are read from the package's R lazy-load database with the
PyPI package ``rdata`` (no R needed).

    python -m venv /tmp/austen && /tmp/austen/bin/pip install rdata==1.1.0
    /tmp/austen/bin/python experiments/corpus/build_austen.py

Selection (deterministic, seed below): sentences of 8-40 words; ``wedding`` = contains a
wedding word, ``adjacent`` = no wedding word but a word about love, family or parties,
``unrelated`` = neither. N_PER_GROUP of each, drawn at random from all six novels.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
import struct
import sys
import tarfile
import urllib.request
import zlib
from pathlib import Path

PACKAGE = "r-cran-janeaustenr"
VERSION = "1.0.0-1"
URL = (
    "http://deb.debian.org/debian/pool/main/r/r-cran-janeaustenr/r-cran-janeaustenr_1.0.0-1_all.deb"
)
SHA256 = "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95"
RDB = "./usr/lib/R/site-library/janeaustenr/data/Rdata"
SEED = 0
N_PER_GROUP = 150
WEDDING = {"wedding", "weddings", "wed", "wedded", "marry", "married", "marrying", "marriage",
           "marriages", "bride", "bridegroom", "groom", "honeymoon"}  # fmt: skip
ADJACENT = {"love", "loved", "lover", "affection", "heart", "family", "mother", "father",
            "sister", "sisters", "brother", "daughter", "daughters", "ball", "party", "dance",
            "dancing", "engaged", "engagement", "attachment", "husband", "wife"}  # fmt: skip
OUT = Path(__file__).resolve().parents[2] / "actadd" / "data" / "austen_sentences.json"


def fetch() -> bytes:
    data = urllib.request.urlopen(URL, timeout=60).read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        sys.exit(f"{URL}: sha256 {digest} is not the expected {SHA256}")
    return data


def data_tar(deb: bytes) -> tarfile.TarFile:
    """The data.tar.* member of a .deb (an ar archive)."""
    assert deb[:8] == b"!<arch>\n", "not an ar archive"
    pos = 8
    while pos < len(deb):
        name = deb[pos : pos + 16].decode().strip()
        size = int(deb[pos + 48 : pos + 58].decode().strip())
        body = deb[pos + 60 : pos + 60 + size]
        if name.startswith("data.tar"):
            return tarfile.open(fileobj=io.BytesIO(body))
        pos += 60 + size + (size % 2)
    raise SystemExit("no data.tar in the package")


def novels(tar: tarfile.TarFile) -> dict[str, list[str]]:
    import rdata

    rdx = tar.extractfile(RDB + ".rdx").read()
    rdb = tar.extractfile(RDB + ".rdb").read()
    index = rdata.conversion.convert(rdata.parser.parse_data(rdx))
    out = {}
    for name, (off, length) in index["variables"].items():
        chunk = rdb[int(off) : int(off) + int(length)]
        assert struct.unpack(">I", chunk[:4])[0] > 0
        value = rdata.conversion.convert(rdata.parser.parse_data(zlib.decompress(chunk[4:])))
        out[name] = [str(x) for x in value]
    return out


ABBREV = re.compile(r"\b(Mr|Mrs|Dr|St|Col|Capt)\.")


def sentences(lines: list[str]) -> list[str]:
    paragraphs, cur = [], []
    for line in lines + [""]:
        if line.strip():
            cur.append(line.strip())
        elif cur:
            paragraphs.append(" ".join(cur))
            cur = []
    out = []
    for p in paragraphs:
        p = ABBREV.sub(r"\1<DOT>", p.replace("_", ""))
        for s in re.split(r"(?<=[.!?])[\"']?\s+(?=[\"']?[A-Z])", p):
            s = s.replace("<DOT>", ".").strip().strip("\"'").strip()
            n = len(s.split())
            if 8 <= n <= 40 and not s.isupper() and not s.lower().startswith("chapter"):
                out.append(s)
    return out


def words(s: str) -> set[str]:
    return set(re.findall(r"[a-z]+", s.lower()))


def main() -> None:
    texts = novels(data_tar(fetch()))
    groups: dict[str, list[dict]] = {"wedding": [], "adjacent": [], "unrelated": []}
    for novel in sorted(texts):
        for s in sentences(texts[novel]):
            w = words(s)
            g = "wedding" if w & WEDDING else "adjacent" if w & ADJACENT else "unrelated"
            groups[g].append({"novel": novel, "text": s})
    rng = random.Random(SEED)
    chosen = []
    for g, rows in groups.items():
        for r in rng.sample(rows, N_PER_GROUP):
            chosen.append({"group": g, **r})
    doc = {
        "description": (
            "Sentences from Jane Austen's six novels, grouped by relevance to weddings, for "
            "the perplexity experiment (experiments/wedding_perplexity.toml)."
        ),
        "license": (
            "The novels (1811-1818) are in the public domain; the R package that carries "
            "them is MIT-licensed (Copyright 2016-2017 Julia Silge)."
        ),
        "source": {
            "registry": "Debian bookworm/main",
            "package": PACKAGE,
            "version": VERSION,
            "url": URL,
            "sha256": SHA256,
            "upstream": "CRAN janeaustenr 1.0.0, texts from Project Gutenberg",
        },
        "recipe": {
            "script": "experiments/corpus/build_austen.py",
            "seed": SEED,
            "n_per_group": N_PER_GROUP,
            "sentence_words": [8, 40],
            "wedding_words": sorted(WEDDING),
            "adjacent_words": sorted(ADJACENT),
            "available": {g: len(rows) for g, rows in groups.items()},
        },
        "sentences": chosen,
    }
    OUT.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}: " + ", ".join(f"{g} {len(r)}" for g, r in groups.items()))


if __name__ == "__main__":
    main()
