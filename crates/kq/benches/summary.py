#!/usr/bin/env python3
"""Prints the medians and the kq / raw ratios of the last `cargo bench -p kq --bench kq`.

Reads criterion's estimates under target/criterion (or $CARGO_TARGET_DIR/criterion, or the
directory given as the first argument). Ratios are in throughput terms: above 1 means kq is
faster. Targets: ping-pong >= 1.2, trigger+collect >= 5. Memory per knote:
examples/knote_memory.rs. A benchmark that did not run (a kq line skipped because the engine
refused EVFILT_READ on a socket, or one filtered out) shows as "-".
"""
import json
import os
import sys

root = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")
if len(sys.argv) > 1:
    root = sys.argv[1]


def estimates(*path):
    return os.path.join(root, *path, "new", "estimates.json")


def median_ns(*path):
    try:
        with open(estimates(*path)) as fh:
            return json.load(fh)["median"]["point_estimate"]
    except OSError:
        return None


def stale(a, b):
    """Whether the estimates at paths a and b are from runs more than an hour apart (one
    line kept from an earlier run, e.g. a kq line skipped this time)."""
    try:
        return abs(os.path.getmtime(estimates(*a)) - os.path.getmtime(estimates(*b))) > 3600
    except OSError:
        return False


def param(group, *names):
    """The numeric parameter (descriptor count) the benchmarks `names` of `group` ran with,
    the most recent first: the first name that has one decides."""
    for name in names:
        d = os.path.join(root, group, name)
        try:
            runs = [p for p in os.listdir(d) if p.isdigit()]
        except OSError:
            continue
        if runs:
            runs.sort(key=lambda p: os.path.getmtime(os.path.join(d, p)), reverse=True)
            return runs[0]
    return None


def fmt(ns):
    if ns is None:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3f} {unit}"
    return f"{ns:.1f} ns"


def line(label, ns, per=1, unit="op"):
    """One benchmark: median time, and time and rate per `unit` when it does `per` of them."""
    each = f"{fmt(ns / per)}/{unit}" if ns and per != 1 else ""
    rate = f"{1e9 * per / ns:,.0f}/s" if ns else "-"
    print(f"{label:52} {fmt(ns):>12} {each:>16} {rate:>14}")


def ratio(what, kq, raw, target=None, raw_name="raw"):
    """kq and raw are paths under root."""
    a, b = median_ns(*kq), median_ns(*raw)
    if not (a and b):
        print(f"  -> {what}: - (not measured)")
        return
    r = b / a
    goal = ""
    if target is not None:
        goal = f" (target >= {target}x: {'met' if r >= target else 'MISSED'})"
    warn = " (WARNING: the two were measured in runs over an hour apart)" if stale(kq, raw) else ""
    print(f"  -> {what}: kq / {raw_name} = {r:.2f}x{goal}{warn}")


print(f"{'benchmark':52} {'median':>12} {'':>16} {'rate':>14}")

groups = [
    ("pingpong", ["kq"], "eventfd_epoll", 1.2, ["round trip, threads unpinned"]),
    ("pingpong_same_cpu", ["kq"], "eventfd_epoll", 1.2, ["round trip, one CPU"]),
    ("pingpong_two_cpus", ["kq"], "eventfd_epoll", 1.2, ["round trip, two CPUs"]),
    ("trigger_collect", ["kq", "kq_one_call", "kq_fd_exposed"], "eventfd_epoll", 5.0,
     ["trigger+collect", "trigger+collect in one kevent()",
      "trigger+collect, kqueue descriptor exposed by as_fd()"]),
]
# The target is for a kqueue used through kevent() alone; none is set for the others.
untargeted = {("trigger_collect", "kq_fd_exposed")}
for group, kqs, raw, target, whats in groups:
    for name in kqs + [raw]:
        line(f"{group}/{name}", median_ns(group, name))
    for kq, what in zip(kqs, whats):
        t = None if (group, kq) in untargeted else target
        ratio(what, (group, kq), (group, raw), t, "eventfd+epoll")

print()
g = "idle_descriptors"
n = param(g, "kq", "epoll_wait", "epoll_wait_fionread")
if n is None:
    print(f"{g}: -")
else:
    for name in ("kq", "epoll_wait", "epoll_wait_fionread"):
        line(f"{g}/{name}/{n}", median_ns(g, name, n))
    ratio(f"{n} idle descriptors, 1 ready, zero timeout", (g, "kq", n), (g, "epoll_wait", n),
          raw_name="epoll_wait")
    ratio("the same, with the byte count", (g, "kq", n), (g, "epoll_wait_fionread", n),
          raw_name="epoll_wait+FIONREAD")

print()
g = "add_delete_descriptors"
n = param(g, "kq", "epoll_ctl")
if n is None:
    print(f"{g}: -")
else:
    for name in ("kq", "epoll_ctl"):
        line(f"{g}/{name}/{n}", median_ns(g, name, n), int(n), "fd")
    ratio(f"EV_ADD+EV_DELETE of {n} descriptors, per descriptor", (g, "kq", n),
          (g, "epoll_ctl", n), raw_name="epoll_ctl ADD+DEL")

print()
g = "tcp_echo"
for name in ("kq", "epoll"):
    line(f"{g}/{name}", median_ns(g, name))
ratio("TCP echo round trip over loopback", (g, "kq"), (g, "epoll"), raw_name="epoll")

print()
adds = [
    ("kq", 1_000_000),
    ("kq", 10_000),
    ("eventfd_epoll_ctl", 10_000),
    ("hashmap_floor", 1_000_000),
]
per = {}
for name, count in adds:
    v = median_ns("add_user_events", name, str(count))
    per[(name, count)] = v / count if v else None
    line(f"add_user_events/{name}/{count}", v, count, "add")
k, e = per[("kq", 10_000)], per[("eventfd_epoll_ctl", 10_000)]
if k and e:
    print(f"  -> EV_ADD of a user event vs eventfd()+epoll_ctl(ADD), 10k each: {e / k:.1f}x")
k, h = per[("kq", 1_000_000)], per[("hashmap_floor", 1_000_000)]
if k and h:
    print(f"  -> 1M EV_ADDs vs 1M hash-map inserts (floor): {k / h:.2f}x the floor's time")
