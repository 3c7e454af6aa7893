#!/usr/bin/env python3
"""bench/proxy.sh's and bench/static.sh's results (TSV) -> the comparison table and
Slipway's ratios.

usage: wrk_table.py RESULTS [static]
With several rounds, each cell is the median over rounds and the req/s column also shows
the spread (min-max) so the noise is visible next to the number. "static": the rows are
file servers (bench/static.sh), with that benchmark's targets.
"""
import csv
import statistics
import sys

TARGETS = [  # (peer, what, target) as the project states them, checked against nginx
    ("nginx", "req/s on /small", ">= 1.0x"),
    ("nginx", "p99 on /small", "<= 1.1x"),
    ("nginx", "1 MiB transfer", ">= 0.9x"),
]
STATIC_TARGETS = [  # bench/static.sh: the edge serving files against nginx serving them
    ("nginx", "req/s on /small", ">= 1.0x"),
    ("nginx", "req/s on /1m", ">= 1.0x"),
]


def main():
    rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
    static = len(sys.argv) > 2 and sys.argv[2] == "static"
    role = "server" if static else "proxy"
    if not rows:
        sys.exit("wrk_table: no results")
    rounds = len({r["round"] for r in rows})
    groups = {}
    for r in rows:
        groups.setdefault((r["proxy"], r["path"]), []).append(r)

    def med(key, proxy, path, cast=float):
        vals = [cast(r[key]) for r in groups.get((proxy, path), [])]
        return statistics.median(vals) if vals else None

    proxies = []
    for r in rows:
        if r["proxy"] not in proxies:
            proxies.append(r["proxy"])
    paths = ["/small", "/1m"]

    print()
    print(f"Results ({rounds} round{'s' if rounds > 1 else ''}"
          f"{', medians; req/s spread min-max' if rounds > 1 else ''}):")
    header = f"{role:<9}{'path':<8}{'req/s':>10}{'spread':>17}{'p50 ms':>9}{'p99 ms':>9}" \
             f"{'MB/s':>9}{'errors':>8}{'cpu %':>7}{'RSS MiB':>9}"
    print(header)
    print("-" * len(header))
    for path in paths:
        for proxy in proxies:
            g = groups.get((proxy, path))
            if not g:
                continue
            rps = [float(r["rps"]) for r in g]
            spread = f"{min(rps):.0f}-{max(rps):.0f}" if len(rps) > 1 else ""
            print(f"{proxy:<9}{path:<8}{med('rps', proxy, path):>10.0f}{spread:>17}"
                  f"{med('p50_ms', proxy, path):>9.3f}{med('p99_ms', proxy, path):>9.3f}"
                  f"{med('transfer_mb_s', proxy, path):>9.1f}"
                  f"{sum(int(r['errors']) for r in g):>8}"
                  f"{med('cpu_pct', proxy, path):>7.0f}"
                  f"{med('rss_kb', proxy, path) / 1024:>9.1f}")
    if static:
        print("(cpu % = the server's CPU time during the run / wall time; RSS after the run)")
    else:
        print("(direct = wrk against the backend without a proxy; cpu % = the proxy's CPU time "
              "during the run / wall time; RSS after the run)")

    if "slipway" not in proxies:
        return
    print()
    print("Slipway / peer:")
    print(f"{'peer':<9}{'req/s small':>13}{'p99 small':>11}{'req/s 1m':>10}{'p99 1m':>8}"
          f"{'MB/s 1m':>9}{'req/CPU-s small':>17}")
    ratios = {}
    for peer in [p for p in proxies if p not in ("slipway", "direct")]:
        def ratio(key, path):
            a, b = med(key, "slipway", path), med(key, peer, path)
            return a / b if a is not None and b else float("nan")

        def per_cpu(proxy, path):
            cpu = med("cpu_pct", proxy, path)
            return med("rps", proxy, path) / (cpu / 100) if cpu else float("nan")

        eff = per_cpu("slipway", "/small") / per_cpu(peer, "/small")
        r = {"rps": ratio("rps", "/small"), "p99": ratio("p99_ms", "/small"),
             "rps1m": ratio("rps", "/1m"), "p99_1m": ratio("p99_ms", "/1m"),
             "mb1m": ratio("transfer_mb_s", "/1m")}
        ratios[peer] = r
        print(f"{peer:<9}{r['rps']:>12.2f}x{r['p99']:>10.2f}x{r['rps1m']:>9.2f}x"
              f"{r['p99_1m']:>7.2f}x{r['mb1m']:>8.2f}x{eff:>16.2f}x")
    if "nginx" in ratios:
        r = ratios["nginx"]
        print()
        print("Targets (against nginx):")
        if static:
            targets = STATIC_TARGETS
            checks = [(r["rps"], r["rps"] >= 1.0), (r["rps1m"], r["rps1m"] >= 1.0)]
        else:
            targets = TARGETS
            checks = [(r["rps"], r["rps"] >= 1.0), (r["p99"], r["p99"] <= 1.1),
                      (r["mb1m"], r["mb1m"] >= 0.9)]
        for (peer, what, target), (value, ok) in zip(targets, checks):
            print(f"  {what:<18} {target:<8} measured {value:.2f}x  {'met' if ok else 'NOT met'}")
    errors = sum(int(r["errors"]) for r in rows)
    if errors:
        print(f"\nwarning: {errors} failed requests in total (see the errors column): a {role} "
              "that fails fast looks faster than it is")


if __name__ == "__main__":
    main()
