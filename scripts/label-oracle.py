#!/usr/bin/env python3
"""The detection delay a perfect clustering would allow: each incident's tickets judged by their
true label, with the default rules' arithmetic (Poisson tail of the label's known background rate
over the 30-minute window and the 5/10/15-minute spans, the false-alarm rate split among the
spans and the square root of the judgements per window, the floor of 6 tickets in the window).
Prints, per injected incident, the incident ticket at which the spike would fire: a bound on what
`backtest` can reach, which separates what the rules allow from what the clustering loses.

usage: scripts/label-oracle.py STREAM [MAX_FALSE_ALARM]   (STREAM: path without .tickets.jsonl)
"""
import json
import math
import sys
from datetime import datetime

WINDOW = 30 * 60
SPANS = (5 * 60, 10 * 60, 15 * 60, WINDOW)
MIN_TICKETS = 6


def seconds(stamp):
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def poisson_tail(k, lam):
    """P(X >= k) for X ~ Poisson(lam), summed upward from k (no cancellation)."""
    if k <= 0:
        return 1.0
    term = math.exp(-lam + k * math.log(lam) - math.lgamma(k + 1))
    total, i = 0.0, k
    while term > 1e-300 and i < k + 1000:
        total += term
        i += 1
        term *= lam / i
    return total


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    base = sys.argv[1]
    alpha = float(sys.argv[2]) if len(sys.argv) > 2 else 2e-5
    tickets = [json.loads(line) for line in open(base + ".tickets.jsonl")]
    truth = {}
    for line in open(base + ".truth.jsonl"):
        row = json.loads(line)
        truth[row["ticket_id"]] = row
    incidents = json.load(open(base + ".incidents.json"))["incidents"]
    minutes = (seconds(tickets[-1]["event_time"]) - seconds(tickets[0]["event_time"])) / 60
    for incident in (i for i in incidents if i["kind"] == "incident"):
        label = incident["label"]
        per_second = incident["background_tickets_of_label"] / minutes / 60
        seen, injected, fired = [], 0, None
        for t in tickets:
            row = truth[t["ticket_id"]]
            if row["label"] != label:
                continue
            now = seconds(t["event_time"])
            seen.append(now)
            injected += row["injected"]
            if not injected:
                continue
            bound = alpha / (math.sqrt(max(1.0, per_second * WINDOW)) * len(SPANS))
            p = min(
                poisson_tail(sum(1 for s in seen if s > now - span), per_second * span)
                for span in SPANS
            )
            if p <= bound and sum(1 for s in seen if s > now - WINDOW) >= MIN_TICKETS:
                fired = injected
                break
            if injected >= incident["tickets"]:
                break
        print(
            f"{label}: background {per_second * WINDOW:.1f} per window, "
            f"{incident['tickets']} incident tickets; fires at incident ticket {fired or '-'}"
        )


if __name__ == "__main__":
    main()
