#!/usr/bin/env python3
"""Writes the results of `meshgate bench log --json FILE` into docs/benchmarks.md, between the
`<!-- bench-log:start -->` and `<!-- bench-log:end -->` markers, so no figure is typed by hand."""
import json
import re
import sys

results_path, doc_path = sys.argv[1], sys.argv[2]
r = json.load(open(results_path))
raw = {int(k): v for k, v in r["raw_write_mb_per_s"].items()}

def n(x):
    return f"{round(x):,}"

lines = ["| scenario | size | producers × in flight × batch | records/s | MB/s | vs raw write |",
         "|---|---|---|---|---|---|"]
for a in r["append"]:
    lines.append(f"| append fsync={a['mode']} | {a['size']} B | {a['producers']} × {a['inflight']} × {a['batch']} "
                 f"| {n(a['records_per_s'])} | {a['mb_per_s']:.1f} | {a['ratio_to_raw']:.2f} |")
for size, mbps in sorted(raw.items()):
    lines.append(f"| raw sequential write + fdatasync (ceiling) | {size} B run | 1 | – | {mbps:.1f} | 1.00 |")
lines.append(f"| read (sequential, checksums verified) | 1024 B | 1 reader | {n(r['read']['records_per_s'])} "
             f"| {r['read']['mb_per_s']:.1f} | – |")

def pick(mode, size, producers, batch):
    return next(a for a in r["append"] if a["mode"] == mode and a["size"] == size
                and a["producers"] == producers and a["batch"] == batch)

none_batched = pick("none", 100, 1, 256)["records_per_s"]
always_64 = pick("always", 100, 64, 1)["records_per_s"]
interval = max(pick("interval", 1024, 1, 256)["ratio_to_raw"], pick("interval", 1024, 64, 1)["ratio_to_raw"])
recovery = r.get("recovery_s")
ok = lambda c: "met" if c else "**not met**"
targets = [
    "| target | figure in this run | status |",
    "|---|---|---|",
    f"| `fsync: none`, 100 B, batched ≥ 2,000,000 records/s | {n(none_batched)} records/s | {ok(none_batched >= 2e6)} |",
    f"| `fsync: always`, 100 B, 64 producers × 64 in flight ≥ 500,000 records/s | {n(always_64)} records/s | {ok(always_64 >= 5e5)} |",
    f"| 1 KiB, `fsync: interval` ≥ 70 % of the raw sequential-write ceiling | {interval:.2f} of raw | {ok(interval >= 0.7)} |",
]
if recovery is not None:
    targets.append(f"| recovery of a {r['recovery_mib']} MiB log after kill -9 ≤ 2 s | {recovery:.3f} s | {ok(recovery <= 2)} |")
targets.append(f"| memory does not grow with log size | RSS {r.get('rss_mib', '?')} MiB after the whole run | see notes |")

block = "\n".join(["<!-- bench-log:start -->", f"Run on {r.get('cores')} cores, {r.get('seconds')} s per scenario.", "",
                   *lines, "", *targets, "<!-- bench-log:end -->"])
doc = open(doc_path).read()
doc = re.sub(r"<!-- bench-log:start -->.*<!-- bench-log:end -->", lambda _: block, doc, flags=re.S)
open(doc_path, "w").write(doc)
