#!/usr/bin/env python3
"""Prints the medians and the kq / raw ratios of the last `cargo bench -p kq --bench kq`.

Reads criterion's estimates under target/criterion (or $CARGO_TARGET_DIR/criterion).
Ratios are in throughput terms: above 1 means kq is faster. Targets (issue 2 item 9):
ping-pong >= 1.2, trigger+collect >= 5. Memory per knote: examples/knote_memory.rs.
"""
import json
import os
import sys

root = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")
if len(sys.argv) > 1:
    root = sys.argv[1]


def median_ns(*path):
    f = os.path.join(root, *path, "new", "estimates.json")
    try:
        with open(f) as fh:
            return json.load(fh)["median"]["point_estimate"]
    except OSError:
        return None


def fmt(ns):
    if ns is None:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3f} {unit}"
    return f"{ns:.1f} ns"


rows = [
    ("pingpong", "kq", "eventfd_epoll", 1, 1.2, "round trip, threads unpinned"),
    ("pingpong_same_cpu", "kq", "eventfd_epoll", 1, 1.2, "round trip, one CPU"),
    ("pingpong_two_cpus", "kq", "eventfd_epoll", 1, 1.2, "round trip, two CPUs"),
    ("trigger_collect", "kq", "eventfd_epoll", 1, 5.0, "trigger+collect"),
    ("trigger_collect", "kq_one_call", "eventfd_epoll", 1, 5.0, "trigger+collect, one call"),
]
print(f"{'benchmark':44} {'median':>12} {'per second':>14}")
for group, kq, raw, _, target, what in rows:
    a, b = median_ns(group, kq), median_ns(group, raw)
    for name, v in ((kq, a), (raw, b)):
        rate = f"{1e9 / v:,.0f}" if v else "-"
        print(f"{group + '/' + name:44} {fmt(v):>12} {rate:>14}")
    if a and b:
        r = b / a
        verdict = "met" if r >= target else "MISSED"
        print(f"  -> {what}: kq / eventfd+epoll = {r:.2f}x (target >= {target}x: {verdict})")

print()
adds = [
    ("kq", 1_000_000),
    ("kq", 10_000),
    ("eventfd_epoll_ctl", 10_000),
    ("hashmap_floor", 1_000_000),
]
per = {}
for name, n in adds:
    v = median_ns("add_user_events", name, str(n))
    per[(name, n)] = v / n if v else None
    each = f"{v / n:.1f} ns/add" if v else "-"
    print(f"{'add_user_events/' + name + '/' + str(n):44} {fmt(v):>12} {each:>14}")
k, e = per[("kq", 10_000)], per[("eventfd_epoll_ctl", 10_000)]
if k and e:
    print(f"  -> EV_ADD of a user event vs eventfd()+epoll_ctl(ADD), 10k each: {e / k:.1f}x")
k, h = per[("kq", 1_000_000)], per[("hashmap_floor", 1_000_000)]
if k and h:
    print(f"  -> 1M EV_ADDs vs 1M hash-map inserts (floor): {k / h:.2f}x the floor's time")
