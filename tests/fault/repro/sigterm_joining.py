"""Reproducer: omnify-auth aborts on SIGTERM while it has no partitions yet.

    python3 tests/fault/repro/sigterm_joining.py [ITERATIONS]

One auth consumer stays; a second one is started over and over and, after
0.2-4 s, either killed with -9 (30 %: leaves a dead member, so the next
joins wait for its session to time out) or stopped with SIGTERM, which must
give exit status 0. With librdkafka 2.0.2 and cooperative-sticky, a SIGTERM
before the first assignment sometimes ends in
  rdkafka_sticky_assignor.c:1896: rd_kafka_sticky_assignor_state_destroy:
  Assertion `assignor_state' failed.
(SIGABRT, status -6): librdkafka issue #4312, fixed in 2.3.0 (PR #4381).
"""
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import faultlib as fl  # noqa: E402

tag = "fltloop" + os.urandom(2).hex()
env = fl.Env(tag, tempfile.mkdtemp(prefix=f"omnify-{tag}-"))
env.run([fl.BIN + "/omnify", "topics", "apply"]); fl.wait_topics(env.topic_prefix)
procs = fl.Processes(env)
crashes = 0
try:
    edge = procs.edge(); a = procs.group("auth", name="a")
    fl.wait_ready(edge); fl.wait_ready(a); fl.wait_group(edge.url)
    for i in range(int(sys.argv[1]) if len(sys.argv) > 1 else 40):
        b = procs.group("auth", name="b")
        d = random.uniform(0.2, 4.0)
        time.sleep(d)
        if random.random() < 0.3:
            b.kill9(); print(i, f"kill -9 after {d:.1f}s"); continue
        assigned = sum(1 for l in b.log_lines() if 'assigned' in str(l.get('msg')))
        rc = b.terminate(30)
        tail = open(b.log_path).read()[-300:]
        print(i, f"SIGTERM after {d:.1f}s (assign callbacks seen {assigned}) -> {rc}", "ASSERT" if "Assertion" in tail else "")
        if rc != 0:
            crashes += 1; print(tail)
finally:
    procs.cleanup()
    try:
        fl.delete_topics(fl.topic_names(env.topic_prefix))
        fl.drop_databases([env.db_prefix + g for g in ("auth", "ops")])
    except Exception as e:  # noqa: BLE001 - hygiene only
        print(f"cleanup: {e}")
print(f"crashes: {crashes}; logs in {env.logdir}")
sys.exit(1 if crashes else 0)
