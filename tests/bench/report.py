"""Render the raw outputs of one tests/bench/run into one markdown table.

  python3 tests/bench/report.py RAW_DIR > table.md

RAW_DIR holds what the run wrote: meta.txt (key=value), <id>.<round>.txt
(the tool's output: wrk, h2load, or a key=value line from our bench tools),
<id>.<round>.cpu (cores each party used meanwhile), mem.txt (name, VmRSS and
VmHWM in KiB), ladder.txt, profile_*.txt. Standard library only.
"""

import glob
import os
import re
import statistics
import sys

RAW = sys.argv[1] if len(sys.argv) > 1 else "."


def read(path):
    try:
        with open(os.path.join(RAW, path)) as f:
            return f.read()
    except OSError:
        return ""


def kv(text):
    out = {}
    for tok in text.split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    return out


META = {}
for line in read("meta.txt").splitlines():
    if "=" in line:
        k, v = line.split("=", 1)
        META[k] = v


def rounds(mid):
    """Round numbers present for a measurement id, sorted."""
    found = []
    for p in glob.glob(os.path.join(RAW, glob.escape(mid) + ".*.txt")):
        m = re.match(re.escape(mid) + r"\.(\d+)\.txt$", os.path.basename(p))
        if m:
            found.append(int(m.group(1)))
    return sorted(found)


UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(text):
    out = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["rps"] = float(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(r"^\s+" + pct + r"%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        if m:
            out[key] = float(m.group(1)) * UNIT_MS[m.group(2)]
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["non2xx"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["errors"] = float(sum(int(x) for x in m.groups())) if m else 0.0
    return out


def parse_h2load(text):
    out = {}
    m = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", text)
    if m:
        out["rps"] = float(m.group(1))
    m = re.search(r"status codes: (\d+) 2xx", text)
    if m:
        out["ok"] = float(m.group(1))
    return out


def parse(mid, r):
    text = read(f"{mid}.{r}.txt")
    if mid in ("a", "b", "c", "b_linger5"):
        out = parse_wrk(text)
    elif mid == "a_h2load":
        out = parse_h2load(text)
    else:
        out = kv(text)
        if "achieved_rps" in out:
            out["rps"] = out["achieved_rps"]
    cpu = kv(read(f"{mid}.{r}.cpu"))
    for k, v in cpu.items():
        out["cpu_" + k] = v
    return out


def series(mid, key):
    vals = []
    for r in rounds(mid):
        v = parse(mid, r).get(key)
        if isinstance(v, float) and v >= 0:
            vals.append(v)
    return vals


def paired(mid1, key1, mid2, key2, fn):
    """fn(x, y) for each round both measured."""
    vals = []
    r2 = set(rounds(mid2))
    for r in rounds(mid1):
        if r not in r2:
            continue
        x, y = parse(mid1, r).get(key1), parse(mid2, r).get(key2)
        if isinstance(x, float) and isinstance(y, float) and y > 0:
            vals.append(fn(x, y))
    return vals


def fmt(v, digits=None):
    if v is None:
        return "n/a"
    if digits is None:
        digits = 0 if abs(v) >= 100 else (1 if abs(v) >= 10 else 2)
    return f"{v:,.{digits}f}"


ROWS = []
VERDICTS = []


def row(ident, bench, figure, vals, target="", ok=None, digits=None, note=""):
    if vals:
        med, lo, hi = statistics.median(vals), min(vals), max(vals)
        cells = [fmt(med, digits), fmt(lo, digits), fmt(hi, digits)]
        if len(vals) == 1:
            cells[1] = cells[2] = "–"
    else:
        med = None
        cells = ["n/a", "–", "–"]
    met = ""
    if ok is not None:
        met = "n/a" if med is None else ("**yes**" if ok(med) else "**no**")
        VERDICTS.append((ident, figure, target, met, med))
    ROWS.append(f"| {ident} | {bench} | {figure} | {' | '.join(cells)} | {target} | {met} | {note} |")


def cpu_per_req(mid, parties, rate_key="rps"):
    """CPU µs per request of the given parties, per round."""
    vals = []
    for r in rounds(mid):
        p = parse(mid, r)
        rate = p.get(rate_key)
        if not isinstance(rate, float) or rate <= 0:
            continue
        cores = sum(p.get("cpu_" + x, 0.0) for x in parties)
        vals.append(cores / rate * 1e6)
    return vals


def cpu_note(mid, parties=("sut", "gen", "broker", "store")):
    parts = []
    for p in parties:
        vals = series(mid, "cpu_" + p)
        if vals:
            parts.append(f"{p} {statistics.median(vals):.2f}")
    mach = series(mid, "cpu_machine")
    if mach:
        parts.append(f"machine {statistics.median(mach):.2f}/{META.get('host_cores', '?')}")
    return ("CPU cores: " + ", ".join(parts)) if parts else ""


# ---------------------------------------------------------------------------
# 1. HTTP ceiling
# ---------------------------------------------------------------------------

conns = META.get("conns", "?")
for mid, bench in (("a", "edge GET /health (wrk)"),
                   ("b", "edge POST /api/auth/signup, Prefer: respond-async (wrk)"),
                   ("c", "Python peer, same request (FastAPI+uvicorn+aiokafka, wrk)")):
    row(mid, bench, "req/s", series(mid, "rps"), note=cpu_note(mid))
    row(mid, "", "p50 ms (closed loop)", series(mid, "p50_ms"))
    row(mid, "", "p99 ms (closed loop)", series(mid, "p99_ms"),
        note=f"non-2xx {fmt(sum(series(mid, 'non2xx')), 0)}, socket errors {fmt(sum(series(mid, 'errors')), 0)}")
    row(mid, "", "server CPU µs per request", cpu_per_req(mid, ("sut",)))
    if mid != "a":
        row(mid, "", "broker CPU µs per request", cpu_per_req(mid, ("broker",)))
row("a'", "edge GET /health (h2load --h1, cross-check)", "req/s", series("a_h2load", "rps"))
if rounds("b_linger5"):
    row("b5", "(b) with OMNIFY_KAFKA_LINGER_MS=5 (variant)", "req/s", series("b_linger5", "rps"),
        note=cpu_note("b_linger5"))
    row("b5", "", "p50 ms (closed loop)", series("b_linger5", "p50_ms"))
    row("b5", "", "p99 ms (closed loop)", series("b_linger5", "p99_ms"))
    row("b5", "", "broker CPU µs per request", cpu_per_req("b_linger5", ("broker",)))
def cs_per_req(which):
    """Context switches and CPU µs of the edge per request, from perf stat over
    5 s in the middle of a 7 s wrk run."""
    rps = parse_wrk(read(f"cs_{which}.wrk")).get("rps")
    cs = clock = None
    for line in read(f"cs_{which}.txt").splitlines():
        parts = line.split(",")
        if len(parts) > 2 and parts[2] == "context-switches":
            cs = float(parts[0])
        if len(parts) > 2 and parts[2] == "task-clock":
            clock = float(parts[0])
    if not rps or cs is None:
        return None
    return cs / (rps * 5), (clock or 0) * 1000 / (rps * 5)


for which in ("a", "b"):
    v = cs_per_req(which)
    if v:
        ROWS.append(f"| {which} | edge under perf stat (one extra run) | context switches per request | "
                    f"{v[0]:.2f} | – | – |  |  | edge CPU {v[1]:.1f} µs per request |")
row("b/a", "async publish vs HTTP ceiling", "ratio of req/s", paired("b", "rps", "a", "rps", lambda x, y: x / y),
    "≥ 0.50", lambda v: v >= 0.5)
row("b/c", "edge vs Python peer", "ratio of req/s", paired("b", "rps", "c", "rps", lambda x, y: x / y),
    "≥ 5", lambda v: v >= 5)
row("c/b", "Python peer vs edge", "ratio of server CPU per request",
    [x / y for x, y in zip(cpu_per_req("c", ("sut",)), cpu_per_req("b", ("sut",))) if y > 0])

# ---------------------------------------------------------------------------
# 2. Round trip
# ---------------------------------------------------------------------------

max_rate = int(float(META.get("max_rate", "0") or 0))
overloaded = {int(float(v)) for k, v in (l.split("=", 1) for l in read("meta.txt").splitlines() if "=" in l)
              if k == "overloaded"}
rates = sorted({int(os.path.basename(p).split("@")[1].split(".")[0])
                for p in glob.glob(os.path.join(RAW, "e@*.txt"))})
if not max_rate:
    ROWS.append("| d/e | highest rate with edge p99 < 20 ms | – | none | – | – |  |  | "
                "not even the ladder's lowest rate (see the ladder below) |")
for rate in rates:
    tag = " (highest with p99 < 20 ms)" if rate == max_rate else ""
    if rate in overloaded:
        tag += " (the edge fell behind in round 1: that round only)"
    d, e = f"d@{rate}", f"e@{rate}"
    row(d, f"raw ping-pong at {rate}/s{tag}", "achieved /s", series(d, "rps"), note=cpu_note(d, ("sut", "gen", "broker")))
    row(d, "", "p50 ms", series(d, "p50_ms"))
    row(d, "", "p99 ms", series(d, "p99_ms"), note=f"timeouts {fmt(sum(series(d, 'timeouts')), 0)}")
    row(d, "", "ping + pong CPU µs per round trip", cpu_per_req(d, ("sut", "gen")))
    row(e, f"edge GET /api/ml/status at {rate}/s{tag}", "achieved /s", series(e, "rps"), note=cpu_note(e, ("sut", "gen", "broker", "store")))
    row(e, "", "p50 ms", series(e, "p50_ms"), "≤ 3", lambda v: v <= 3)
    row(e, "", "p99 ms", series(e, "p99_ms"),
        note=f"non-2xx {fmt(sum(series(e, 'non2xx')), 0)}, timeouts {fmt(sum(series(e, 'timeouts')), 0)}")
    row(e, "", "edge + ml CPU µs per round trip", cpu_per_req(e, ("sut",)))
    row(f"e/d@{rate}", "edge vs raw, p50", "ratio", paired(e, "p50_ms", d, "p50_ms", lambda x, y: x / y),
        "≤ 1.5", lambda v: v <= 1.5)
    row(f"e/d@{rate}", "edge vs raw, p99", "ratio", paired(e, "p99_ms", d, "p99_ms", lambda x, y: x / y),
        "≤ 2", lambda v: v <= 2)

if rounds("d0@500") or rounds("e0@500"):
    row("d0", "raw ping-pong at 500/s, linger.ms=0 (variant)", "p50 ms", series("d0@500", "p50_ms"))
    row("d0", "", "p99 ms", series("d0@500", "p99_ms"))
    row("e0", "edge at 500/s, OMNIFY_KAFKA_LINGER_MS=0 for edge and ml (variant)", "p50 ms",
        series("e0@500", "p50_ms"))
    row("e0", "", "p99 ms", series("e0@500", "p99_ms"), note=cpu_note("e0@500"))

# ---------------------------------------------------------------------------
# 3. Consumer throughput
# ---------------------------------------------------------------------------

n_msgs = META.get("messages", "?")


def per_msg_us(mid):
    vals = []
    for r in rounds(mid):
        p = parse(mid, r)
        if p.get("cpu_s") and p.get("count"):
            vals.append(p["cpu_s"] / p["count"] * 1e6)
    return vals


for mid, bench in (("f", "raw librdkafka group consumer"),
                   ("g", "omnify-ml, full runtime (decode, validate, oplog lookup + insert, commit)"),
                   ("h1", "raw consumer + 1 store insert per message"),
                   ("h2", "raw consumer + store lookup + insert (what the runtime does)")):
    row(mid, f"{bench}, {n_msgs} msgs", "msgs/s, steady", series(mid, "steady_rps"), note=cpu_note(mid, ("broker", "store")))
    row(mid, "", "exec → all handled, ms", series(mid, "start_to_all_ms"))
    cpu = per_msg_us(mid)
    if cpu:
        row(mid, "", "CPU µs per message (consumer process)", cpu)
row("g/f", "runtime vs raw consumer", "ratio of steady msgs/s",
    paired("g", "steady_rps", "f", "steady_rps", lambda x, y: x / y), "≥ 0.50", lambda v: v >= 0.5)
row("g/f", "", "ratio of exec → all rates",
    paired("g", "start_to_all_ms", "f", "start_to_all_ms", lambda x, y: y / x))
row("g/h2", "runtime vs raw + the same two store calls", "ratio of steady msgs/s",
    paired("g", "steady_rps", "h2", "steady_rps", lambda x, y: x / y))

for mid, bench in (("f2", "raw librdkafka responder (consume, one reply per message)"),
                   ("g2", "omnify-ml, a read-only command (ml.status) answered to its reply-to"),
                   ("h3", "raw consumer writing in bulk: one document + one operation record per message"),
                   ("g3", "runtime, a state-changing command (benchio.put, batch handler) with its operation record")):
    row(mid, f"{bench}, {n_msgs} msgs", "msgs/s, steady", series(mid, "steady_rps"), note=cpu_note(mid, ("broker", "store")))
    cpu = per_msg_us(mid)
    if cpu:
        row(mid, "", "CPU µs per message (consumer process)", cpu)
row("g2/f2", "read command vs raw responder", "ratio of steady msgs/s",
    paired("g2", "steady_rps", "f2", "steady_rps", lambda x, y: x / y), "≥ 0.50", lambda v: v >= 0.5)
row("g3/h3", "state-changing command vs raw bulk writes", "ratio of steady msgs/s",
    paired("g3", "steady_rps", "h3", "steady_rps", lambda x, y: x / y), "≥ 0.80", lambda v: v >= 0.8)
row("g3", "state-changing commands per group process", "msgs/s, steady",
    series("g3", "steady_rps"), "≥ 10,000", lambda v: v >= 10000,
    note="bounded by the local store's bulk inserts (tests/bench/store)")

# ---------------------------------------------------------------------------
# 4. Memory and start-up
# ---------------------------------------------------------------------------

MEM = {}
for line in read("mem.txt").splitlines():
    parts = line.split()
    if len(parts) >= 3:
        name, vals = parts[0], [int(x) for x in parts[1:]] + [0, 0]
        old = MEM.get(name)
        vals += [0, 0, 0]
        if name.startswith(("edge_load_e@", "ml_load_e@")):
            name = name.split("@")[0]
        if old is None or vals[0] > old[0]:  # the largest sample of a name
            MEM[name] = (vals[0], max(vals[1], old[1] if old else 0), vals[2], vals[3], vals[4])
for r in rounds("g"):
    p = parse("g", r)
    if p.get("rss_kib"):
        old = MEM.get("ml_load_g", (0, 0, 0, 0, 0))
        MEM["ml_load_g"] = (max(old[0], int(p["rss_kib"])), max(old[1], int(p["hwm_kib"])), 0, 0, 0)


def mem_row(ident, bench, name, limit=None):
    if name not in MEM:
        return
    rss, hwm, anon, filed, pss = MEM[name]
    rss_mib, hwm_mib = rss / 1024, hwm / 1024
    target = f"≤ {limit} MiB" if limit else ""
    met = ""
    if limit:
        met = "**yes**" if rss_mib <= limit else "**no**"
        VERDICTS.append((ident, bench, target, met, rss_mib))
    split = f", RssAnon {anon / 1024:.1f}, RssFile {filed / 1024:.1f}" if anon or filed else ""
    split += f", Pss {pss / 1024:.1f}" if pss else ""
    ROWS.append(f"| {ident} | {bench} | VmRSS MiB | {rss_mib:.1f} | – | – | {target} | {met} | "
                f"VmHWM {hwm_mib:.1f} MiB{split} |")


mem_row("mem", "omnify-edge idle", "idle_edge", 16)
mem_row("mem", "omnify-edge under (b)", "edge_load_b")
mem_row("mem", "omnify-edge under (e)", "edge_load_e")
for g in ("auth", "integrations", "agentkit", "analytics", "onboarding", "ml", "infrastructure"):
    mem_row("mem", f"omnify-{g} idle", f"idle_{g}", 12)
mem_row("mem", "omnify-ml under (e)", "ml_load_e")
mem_row("mem", "omnify-ml under (g)", "ml_load_g")
mem_row("mem", "omnify monolith idle (edge + 7 groups)", "monolith_idle", 48)
mem_row("mem", "omnify monolith under fixed-rate /api/ml/status", "monolith_load")
mem_row("mem", "Python peer idle", "peer_idle")
mem_row("mem", "Python peer under (c)", "peer_load_c")

for mid, bench, limit in (("startup_edge", "omnify-edge", 50), ("startup_ml", "omnify-ml (ops /health)", 50),
                          ("startup_monolith", "omnify monolith", 50), ("startup_peer", "Python peer", None)):
    vals = series(mid, "health_ms")
    if limit:
        row("start", f"{bench}: exec → /health 200", "ms", vals, f"≤ {limit}", lambda v, l=limit: v <= l)
    else:
        row("start", f"{bench}: exec → /health 200", "ms", vals)
row("start", "omnify-ml restarted: exec → first queued command handled (its reply received)", "ms",
    series("first_ml", "exec_to_reply_ms"))

# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

print(f"# Omnify benchmarks, {META.get('date', '?')}\n")
print(f"- Machine: {META.get('host_cores', '?')} cores ({META.get('cpu_model', '?')}), "
      f"{META.get('mem_total', '?')}, Linux {META.get('kernel', '?')}; load average "
      f"{META.get('load_before', '?')} before, {META.get('load_after', '?')} after (1/5/15 min; "
      "other work on the machine counts in it).")
print(f"- Pinned with taskset: load generators (wrk, h2load, bench-openloop) on CPU "
      f"{META.get('gen_cpu', '?')}; everything under test (edge, groups, monolith, Python peer, "
      f"ping-pong pair, raw consumers) on CPU {META.get('sut_cpu', '?')}. The Kafka broker and the "
      "store (JVMs) are not pinned and share both cores.")
print(f"- Versions: Kafka {META.get('kafka', '?')} (KRaft, one node), librdkafka "
      f"{META.get('librdkafka', '?')}, libmicrohttpd {META.get('libmicrohttpd', '?')}, wrk "
      f"{META.get('wrk', '?')}, h2load {META.get('h2load', '?')}, Python {META.get('python', '?')}.")
print(f"- Code: commit {META.get('commit', '?')}; {META.get('build', '?')}.")
print(f"- Kafka settings, edge and raw alike: producers idempotent, acks=all, linger.ms="
      f"{META.get('linger_ms', '1')} (OMNIFY_KAFKA_LINGER_MS); group consumers cooperative-sticky, "
      "offsets stored after handling, auto-commit every 500 ms, fetch.wait.max.ms=100, "
      "fetch.min.bytes=1; reply listeners assigned to one partition, fetch.wait.max.ms=100.")
print(f"- Rounds: {META.get('rounds', '?')} (median, min, max). HTTP ceiling runs: "
      f"{META.get('http_seconds', '?')} s each, {conns} keep-alive connections, 1 wrk thread, after "
      f"a 2 s warm-up. Fixed-rate runs: bench-openloop / bench-pingpong, {META.get('rate_seconds', '?')} s "
      "measured after 1 s, latency from each request's scheduled send time (no coordinated "
      "omission), 64 connections. (b) and (c) send the same signup JSON with a new email each "
      "time; the edge's signup rate limits are lifted for the run (OMNIFY_RATE_IP_PER_MIN, "
      "OMNIFY_RATE_ACCOUNT_PER_MIN = 1000000), the limiter itself still runs. No group consumes "
      "auth.commands during (a)-(c). CPU: cores used during the run (sut = the process under "
      "test, gen = the load generator).\n")

print("| # | benchmark | figure | median | min | max | target | met | notes |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for line in ROWS:
    print(line)

integrations = read("integrations.md").strip()
if integrations:
    print("\nIntegrations (tests/bench/integrations.py): records synced per second from the "
          "provider stand-ins against a plain client reading the same pages at the same pace, "
          "and the group's RSS:\n")
    print(integrations)

agentkit = read("agentkit.md").strip()
if agentkit:
    print("\nAgentkit (tests/bench/agentkit): one agentkit process, each figure beside the bus "
          "round trip and the store's acknowledged writes measured in the same run:\n")
    print(agentkit)

restarts = read("restarts.txt").strip().splitlines()
if restarts:
    print(f"\nThe shared broker was restarted by other work during {len(restarts)} sample(s); "
          "each such sample was measured again: " + "; ".join(restarts) + ".")

ladder = read("ladder.txt").strip().splitlines()
if ladder:
    print("\nRate ladder for (e), 3 s each, stopping at the first rate with p99 ≥ 20 ms or falling behind:\n")
    for line in ladder:
        v = kv(line)
        print(f"- {fmt(v.get('target_rps'), 0)}/s: achieved {fmt(v.get('achieved_rps'), 0)}/s, "
              f"p50 {fmt(v.get('p50_ms'))} ms, p99 {fmt(v.get('p99_ms'))} ms, "
              f"non-2xx {fmt(v.get('non2xx'), 0)}, timeouts {fmt(v.get('timeouts'), 0)}")

for name, title in (("edge", "omnify-edge during (b)"), ("ml", "omnify-ml during (g)")):
    text = read(f"profile_{name}.txt").strip()
    dso = read(f"profile_{name}_dso.txt").strip()
    if text:
        print(f"\nProfile of {title} (perf record -F 999, self time; by library, then top symbols):\n\n```")
        if dso:
            print("\n".join(l.strip() for l in dso.splitlines()))
            print()
        print("\n".join(l.strip() for l in text.splitlines()[:18]))
        print("```")
