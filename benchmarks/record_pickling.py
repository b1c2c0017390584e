"""What a record costs to cross a Beam stage boundary, with `pickled_by_fields` and without it.

Between stages Beam encodes every element with the coder of its PCollection; the build's records
(Document, Drop, Tally, DedupRecord, TokenizedDoc) have no typed coder, so `FastPrimitivesCoder`
pickles them. Python pickles a `slots=True` dataclass through `dataclasses._dataclass_getstate` /
`_setstate` (a walk over `fields()` in Python per object); `lemur_corpus.document.pickled_by_fields`
pickles it as (class, field values). This measures the encode + decode round trip of real records
(documents of ../shared/data, their dedup records, a tokenized copy) both ways, in one run: the
baseline is the same class with the hook removed.

A near-dedup payload (`pipelines/dedup_common.payload`: a document's record fields, keep key and
shingle set) crosses as a plain tuple, which the coder encodes without pickle; its baseline is the
form it had before, a NamedTuple of the `DedupRecord`, the keep key and the set (pickled).

    .venv/bin/python benchmarks/record_pickling.py [--rounds 20000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import DEFAULT_DATA, read_jsonl  # noqa: E402
from lemur_corpus.dedup.config import DedupConfig  # noqa: E402
from lemur_corpus.dedup.exact import survivor_key  # noqa: E402
from lemur_corpus.dedup.minhash import MinHasher  # noqa: E402
from lemur_corpus.dedup.verify import to_set_bytes  # noqa: E402
from lemur_corpus.pipelines.dedup_common import PAYLOAD_DATA, PAYLOAD_KEEP, payload, payload_record  # noqa: E402


class NamedPayload(NamedTuple):
    """A near-dedup payload as it travelled before (`pipelines/dedup_common.Payload` was this class)."""

    record: Any
    keep: tuple
    data: bytes


def round_trip_us(impl: object, records: list, rounds: int) -> float:
    started = time.process_time()
    done = 0
    while done < rounds:
        for record in records:
            impl.decode(impl.encode(record))  # type: ignore[attr-defined]  # a Beam CoderImpl
        done += len(records)
    return 1e6 * (time.process_time() - started) / done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20_000)
    args = parser.parse_args()
    from apache_beam import coders
    from apache_beam.typehints import Any

    from lemur_corpus.accounting import Drop
    from lemur_corpus.dedup.exact import DedupRecord, dedup_record
    from lemur_corpus.document import Document
    from lemur_corpus.pipelines.tokenize import TokenizedDoc
    from lemur_corpus.token_spill import SpilledTokens

    pages = read_jsonl(DEFAULT_DATA / "web" / "trafilatura_pages.main.jsonl.zst")[:200]
    docs = [Document(f"web/{i}", "refinedweb", "text", p["text"], "en", {"url": p.get("url", "")}, f"pages:{i}")
            for i, p in enumerate(pages)]
    samples = {
        "Document": docs,
        "DedupRecord": [dedup_record(d) for d in docs],
        "TokenizedDoc": [TokenizedDoc(d.id, d.source, d.kind,
                                      SpilledTokens(f"/build/shards/spill-{i:032x}.bin", i * 1000, len(d.text) // 4),
                                      d.nbytes) for i, d in enumerate(docs)],
        "Drop": [Drop("filter", d.source, "c4.lines", d.nbytes, d.id, d.origin, "{}") for d in docs],
    }
    impl = coders.registry.get_coder(Any).get_impl()
    print(f"encode + decode with Beam's FastPrimitivesCoder, mean over {args.rounds:,} round trips (CPU us):")
    for name, records in samples.items():
        cls = {"Document": Document, "DedupRecord": DedupRecord, "TokenizedDoc": TokenizedDoc, "Drop": Drop}[name]
        assert impl.decode(impl.encode(records[0])) == records[0]
        ours = round_trip_us(impl, records, args.rounds)
        hook = cls.__dict__["__reduce__"]
        del cls.__reduce__  # the baseline: dataclasses' own getstate/setstate
        try:
            baseline = round_trip_us(impl, records, args.rounds)
        finally:
            cls.__reduce__ = hook
        print(f"  {name:<13} pickled_by_fields {ours:6.1f} us | dataclass default {baseline:6.1f} us | "
              f"x{baseline / ours:.2f} faster")
    near = DedupConfig().near("text")  # the build's defaults
    hasher = MinHasher(near.num_perm, near.seed, near.hash)
    shingle_sets = [hasher.sign(d.text, near.tokens, near.ngram, near.max_shingles, True)[2] for d in docs]
    payloads = [(d.id, payload(r, survivor_key(r, DedupConfig().keep), to_set_bytes(s)))
                for d, r, s in zip(docs, samples["DedupRecord"], shingle_sets, strict=True) if s is not None]
    assert impl.decode(impl.encode(payloads[0])) == payloads[0]
    ours = round_trip_us(impl, payloads, args.rounds)
    tupled = [(i, NamedPayload(payload_record(p), p[PAYLOAD_KEEP], p[PAYLOAD_DATA])) for i, p in payloads]
    baseline = round_trip_us(impl, tupled, args.rounds)
    print(f"  {'Payload':<13} plain tuple       {ours:6.1f} us | NamedTuple (before) {baseline:4.1f} us | "
          f"x{baseline / ours:.2f} faster (with its id; shingle sets of {len(payloads)} pages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
