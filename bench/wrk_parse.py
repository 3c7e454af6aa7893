#!/usr/bin/env python3
"""One wrk --latency output file -> one TSV row of bench/proxy.sh's results.

usage: wrk_parse.py WRK_OUTPUT ROUND PROXY PATH CPU_PCT RSS_KB
Columns: round proxy path rps p50_ms p99_ms transfer_mb_s errors cpu_pct rss_kb
(errors: socket errors plus non-2xx/3xx responses).
"""
import re
import sys

TIME_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
SIZE_UNITS = {"B": 1.0 / (1024 * 1024), "KB": 1.0 / 1024, "MB": 1.0, "GB": 1024.0}


def ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"unknown latency {text!r}")
    return float(m.group(1)) * TIME_UNITS[m.group(2)]


def main():
    path, rnd, proxy, url_path, cpu, rss = sys.argv[1:7]
    out = open(path).read()
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    transfer = re.search(r"^Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)", out, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if not (rps and transfer and p50 and p99):
        sys.exit(f"wrk_parse: cannot read wrk's output in {path}:\n{out}")
    errors = 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    mb = float(transfer.group(1)) * SIZE_UNITS[transfer.group(2)]
    print("\t".join([rnd, proxy, url_path, f"{float(rps.group(1)):.0f}", f"{ms(p50.group(1)):.3f}",
                     f"{ms(p99.group(1)):.3f}", f"{mb:.1f}", str(errors), cpu, rss or "0"]))


if __name__ == "__main__":
    main()
