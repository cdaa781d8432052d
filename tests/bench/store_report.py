#!/usr/bin/env python3
"""store_report.py RAW_DIR CANDIDATE... - the markdown tables of tests/bench/store.

Reads RAW_DIR/<candidate>.txt (bench-store's "row" and "feature" lines) and
RAW_DIR/meta.txt; the first candidate is the baseline every ratio is
against (today's store). Prints the pattern table (rate, ratio, p50/p99,
checks), the notes of every row whose checks failed or that ran out of
budget, and the MongoDB 7 feature table.
"""
import sys
from pathlib import Path

NAMES = {
    "store": "today's store (H2)",
    "sqlite": "FerretDB 1.24.2 / SQLite",
    "pg": "FerretDB 1.24.2 / PostgreSQL 15",
    "mongo": "MongoDB",
}
# Rows in the order the domains lean on them, with what they stand for.
PATTERNS = [
    ("projection", "bulk upserts, 5-field key (bulks of 1000, each key twice)"),
    ("projection_id", "same facts, keyed by one composed _id"),
    ("upsert_bulk", "bulkWrite 2000 upserts over 1000 _ids"),
    ("in_lookup", "$in on _id, 200 ids per query"),
    ("find_idx_small", "tenant + day range, sort, limit 50; index; N/10 docs"),
    ("find_idx_large", "same, index, N docs"),
    ("find_noidx_large", "same, no index, N docs"),
    ("claims_small", "findOneAndUpdate claims with lease, 8 claimers, 10k/5k docs"),
    ("claims_large", "same, 100k/20k docs"),
    ("aggregate", "$match + $group $sum + $sort + $limit"),
    ("cas", "compare-and-set, 8 threads on 20 docs"),
    ("insert_one", "single inserts"),
    ("insert_many", "insert_many, batches of 1000"),
    ("unique", "unique index enforced"),
    ("ttl", "TTL expiry (s after the date until gone)"),
]


def parse(line):
    head, _, note = line.rstrip("\n").partition(" note=")
    parts = head.split()
    kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    kv["kind"] = parts[0]
    kv["note"] = note
    return kv


def fmt_rate(x):
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def main():
    raw = Path(sys.argv[1])
    cands = sys.argv[2:]
    rows, feats, feat_order = {}, {}, []
    for c in cands:
        f = raw / f"{c}.txt"
        if not f.exists():
            continue
        for line in f.read_text().splitlines():
            if line.startswith("row "):
                r = parse(line)
                rows[(c, r["pattern"])] = r
            elif line.startswith("feature "):
                r = parse(line)
                feats[(c, r["name"])] = r
                if r["name"] not in feat_order:
                    feat_order.append(r["name"])
    meta = {}
    mf = raw / "meta.txt"
    if mf.exists():
        for line in mf.read_text().splitlines():
            k, eq, v = line.partition("=")
            if eq and not line.startswith("restart"):
                meta.setdefault(k, []).append(v)

    base = cands[0]
    print("## Store candidates on Omnify's access patterns\n")
    print(" ".join(f"{k}: {', '.join(v)};" for k, v in meta.items()))
    restarts = [l for l in (mf.read_text().splitlines() if mf.exists() else []) if l.startswith("restart")]
    if restarts:
        print(f"\nRestarted after a timed-out request: {', '.join(r[8:] for r in restarts)}.")
    print(f"\nEach cell: rate, ratio to {NAMES.get(base, base)} measured in the same run, "
          "p50 / p99 latency of one operation (one bulk, one query, one claim), and the "
          "pattern's checks (✓ held, ✗ failed: see the notes). N = 100,000 documents "
          "(quick: 20,000).\n")
    print("| pattern | unit | " + " | ".join(NAMES.get(c, c) for c in cands) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in cands) + " |")
    notes = []
    for pat, what in PATTERNS:
        if not any((c, pat) in rows for c in cands):
            continue
        unit = next(rows[(c, pat)]["unit"] for c in cands if (c, pat) in rows)
        cells = []
        b = rows.get((base, pat))
        for c in cands:
            r = rows.get((c, pat))
            if r is None:
                cells.append("not run")
                continue
            ok = r["ok"] == "1"
            mark = "✓" if ok else "✗"
            rate = float(r["rate"])
            if pat == "unique":
                cell = mark
            elif pat == "ttl":
                cell = f"{rate:.0f} s {mark}" if ok else f"not expired {mark}"
            else:
                cell = f"{fmt_rate(rate)}"
                if c != base and b is not None and float(b["rate"]) > 0:
                    cell += f" ({rate / float(b['rate']):.2f}×)"
                cell += f" · {float(r['p50_ms']):.1f} / {float(r['p99_ms']):.1f} ms {mark}"
            if "(budget)" in r["note"]:
                cell += " ⏱"
            cells.append(cell)
            if not ok or "(budget)" in r["note"]:
                notes.append(f"- {pat} on {NAMES.get(c, c)}: {r['note']}")
        print(f"| {pat}: {what} | {unit} | " + " | ".join(cells) + " |")
    print("\n⏱: stopped at the time budget before the planned count (rate is over what it did).")
    if notes:
        print("\nNotes on failed checks and budget stops:\n")
        print("\n".join(notes))
    print("\nWhat each row did, on the baseline:\n")
    for pat, _ in PATTERNS:
        r = rows.get((base, pat))
        if r is not None:
            print(f"- {pat}: {r['note']}")

    if feat_order:
        print("\n## What MongoDB 7 does, probed on each candidate\n")
        print("| feature | " + " | ".join(NAMES.get(c, c) for c in cands) + " |")
        print("| --- | " + " | ".join("---" for _ in cands) + " |")
        for name in feat_order:
            cells = []
            for c in cands:
                r = feats.get((c, name))
                if r is None:
                    cells.append("not run")
                elif r["ok"] == "1":
                    cells.append("✓" + (f" {r['note'][:90]}" if r["note"] else ""))
                else:
                    cells.append("✗ " + r["note"][:90].replace("|", "/"))
            print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
