#!/usr/bin/env bash
# Ranks the kernels of an `ncu --metrics gpu__time_duration.sum --print-summary
# per-kernel` log by their total time (average x invocations): one line each,
# "share%  total_us  invocations  name", largest first, plus the sum.
# Usage: bash tools/ncu_top.sh NCU_LOG [N (default 25)]
set -eu
awk -v top="${2:-25}" '
    /Invocations [0-9]+/ { name = $0; sub(/^ +/, "", name); sub(/ \(.*$/, "", name); n = $NF }
    /gpu__time_duration.sum/ && n {
        s = $NF * ($2 == "ms" ? 1000 : $2 == "ns" ? 0.001 : $2 == "s" ? 1e6 : 1) * n
        k = name
        t[k] += s; c[k] += n; total += s; n = 0
    }
    END {
        if (!total) { print "ncu_top: no kernel durations in the log"; exit 1 }
        m = 0
        for (k in t) keys[++m] = k
        for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (t[keys[j]] > t[keys[i]]) { x = keys[i]; keys[i] = keys[j]; keys[j] = x }
        for (i = 1; i <= m && i <= top; i++)
            printf "%5.1f%%  %10.0f us  %5d x  %s\n", 100 * t[keys[i]] / total, t[keys[i]], c[keys[i]], substr(keys[i], 1, 110)
        printf "total %.0f us over %d kernel names\n", total, m
    }' "$1"
