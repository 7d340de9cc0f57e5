#!/usr/bin/env python3
"""Skyward's placement against HiGHS, an independent exact MILP solver.

Usage: scripts/plan-vs-highs.py [--binary target/release/skyward] [--fleet tight|mixed]
                                [--sizes 300,1000] [--seeds 0,1] [--time-limit 120]

Needs `pip install highspy`. For each fleet, `skyward bench plan-one
--export` writes the solver's problem (options with their list spend per
provider and their use of each quota or pool row, row limits, commitments
and discounts); this script builds the MILP from that JSON on its own
(max placed first, then min cost, with cost_p = max(commit_p, factor_p *
spend_p)) and solves it with HiGHS. It prints, per fleet and method,
Skyward's count, proven maximum, cost and bound against HiGHS's optimum,
and fails if any Skyward bound is above a plan HiGHS found or if Skyward
claims a maximum count below HiGHS's count.
"""
import argparse
import json
import subprocess
import sys
import tempfile

import highspy
import numpy as np


def solve_highs(pr, time_limit):
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(time_limit))
    h.setOptionValue("mip_rel_gap", 0.0)
    inf = highspy.kHighsInf
    opts = pr["options"]
    n = len(opts)
    providers = len(pr["commit"])
    scale = 1e-3
    penalty = pr["skip_penalty"] * scale
    col = 0
    x = []
    costs, lower, upper, integ = [], [], [], []
    contracted = [c > 0 for c in pr["commit"]]
    for w in range(n):
        xs = []
        for o in opts[w]:
            c = sum(pr["factor"][p] * s for p, s in o["spend"] if not contracted[p]) * scale
            costs.append(c); lower.append(0); upper.append(1); integ.append(1)
            xs.append(col); col += 1
        x.append(xs)
    u = []
    for w in range(n):
        if pr["can_skip"][w]:
            costs.append(penalty); lower.append(0); upper.append(1); integ.append(1)
            u.append(col); col += 1
        else:
            u.append(None)
    z = {}
    for p in range(providers):
        if contracted[p]:
            costs.append(1.0); lower.append(pr["commit"][p] * scale); upper.append(inf); integ.append(0)
            z[p] = col; col += 1
    h.addVars(col, np.array(lower, dtype=float), np.array(upper, dtype=float))
    h.changeColsCost(col, np.arange(col, dtype=np.int32), np.array(costs, dtype=float))
    h.changeColsIntegrality(col, np.arange(col, dtype=np.int32),
                            np.array([highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                                      for i in integ]))
    for w in range(n):
        idx = list(x[w]) + ([u[w]] if u[w] is not None else [])
        h.addRow(1.0, 1.0, len(idx), np.array(idx, dtype=np.int32), np.ones(len(idx)))
    rows = [[] for _ in pr["row_limit"]]
    spend = {p: [] for p in z}
    for w in range(n):
        for k, o in enumerate(opts[w]):
            for r, a in o["uses"]:
                rows[r].append((x[w][k], a))
            for p, s in o["spend"]:
                if p in z:
                    spend[p].append((x[w][k], pr["factor"][p] * s * scale))
    for r, entries in enumerate(rows):
        if entries:
            h.addRow(-inf, pr["row_limit"][r], len(entries),
                     np.array([e[0] for e in entries], dtype=np.int32), np.array([e[1] for e in entries]))
    for p, entries in spend.items():
        # z_p - factor * spend >= 0
        idx = [z[p]] + [e[0] for e in entries]
        val = [1.0] + [-e[1] for e in entries]
        h.addRow(0.0, inf, len(idx), np.array(idx, dtype=np.int32), np.array(val))
    h.run()
    status = h.getModelStatus()
    sol = h.getSolution().col_value
    info = h.getInfo()
    placed = sum(1 for w in range(n) if any(sol[c] > 0.5 for c in x[w]))
    # Cost of the plan recomputed from the choice, without penalties.
    s = [0.0] * providers
    for w in range(n):
        for k, c in enumerate(x[w]):
            if sol[c] > 0.5:
                for p, v in opts[w][k]["spend"]:
                    s[p] += v
    cost = sum(max(pr["commit"][p], pr["factor"][p] * s[p]) for p in range(providers))
    bound = info.mip_dual_bound / scale - pr["skip_penalty"] * (n - placed)
    return placed, cost, bound, h.modelStatusToString(status)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/skyward")
    ap.add_argument("--fleet", default="tight")
    ap.add_argument("--sizes", default="300,1000")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--methods", default="auto,lagrangian")
    ap.add_argument("--time-limit", type=float, default=120)
    a = ap.parse_args()
    bad = 0
    print(f"{'size':>6} {'seed':>4} {'method':<11} {'placed':>6} {'max':>6} {'HiGHS placed':>12} "
          f"{'cost':>16} {'HiGHS cost':>16} {'above %':>8} {'bound':>16} {'HiGHS status':<14} {'ms':>8}")
    for size in map(int, a.sizes.split(",")):
        for seed in map(int, a.seeds.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                path = f"{tmp}/problem.json"
                runs = {}
                for i, m in enumerate(a.methods.split(",")):
                    args = [a.binary, "bench", "plan-one", "--size", str(size), "--seed", str(seed),
                            "--repeats", "1", "--fleet", a.fleet, "--method", m, "-o", "json"]
                    if i == 0:
                        args += ["--export", path]
                    runs[m] = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
                pr = json.load(open(path))
            hp, hc, hb, hs = solve_highs(pr, a.time_limit)
            for m, r in runs.items():
                above = 100 * (r["total_cost_usd"] - hc) / hc if hc else 0.0
                print(f"{size:>6} {seed:>4} {m:<11} {r['placed']:>6} {r['max_placeable']:>6} {hp:>12} "
                      f"{r['total_cost_usd']:>16,.2f} {hc:>16,.2f} {above:>8.3f} {r['lower_bound_usd']:>16,.2f} "
                      f"{hs:<14} {r['median_ms']:>8.1f}")
                if r["max_placeable"] < hp:
                    print(f"  FAIL: claimed maximum {r['max_placeable']} below HiGHS's count {hp}")
                    bad += 1
                if r["placed"] <= hp and r["lower_bound_usd"] > hc + 0.01 and r["placed"] == hp:
                    print(f"  FAIL: bound {r['lower_bound_usd']} above a plan HiGHS found ({hc})")
                    bad += 1
    sys.exit(1 if bad else 0)


main()
