#!/usr/bin/env python3
"""An experiment, not part of sevloop: detection without clusters. Each ticket is judged on its
ball (the tickets of its product within cosine RADIUS of it in sentence space): the distinct
customers of the ball's newest span against the ball's own rate over the previous HISTORY hours,
with the default rules' arithmetic (spans, the floor of 6 tickets from 5 customers, the
false-alarm rate split among the spans and √usual). It asks whether an incident that the
clustering spreads over several clusters, or blends into a broad one, would stand out in the
sentence space around each of its tickets. Results and the command: docs/MEASUREMENTS.md.

Needs numpy and the embedding cache `backtest` writes (~/.cache/sevloop/embeddings/*.f32, the
distinct masked texts in byte order, 384 floats each); the masking below mirrors
`sevloop_core::embedding_text`, and a mismatch fails the length check.

Unlike the rules it borrows from: customers are not weighted by tier, there is no cold-start
rule, and a ball is judged only once its product has 2 hours of history. An incident counts as
found when any of its firings is its own (several firings of one burst would be one episode).

usage: CACHE=FILE [RADIUS=0.55] [ALPHA=5e-6] [HISTORY=24] scripts/ball-scan.py STREAM...
       (STREAM: path without .tickets.jsonl, with .truth.jsonl and .incidents.json beside it)
"""
import hashlib
import importlib.util
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

_spec = importlib.util.spec_from_file_location("oracle", Path(__file__).with_name("label-oracle.py"))
oracle = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(oracle)
WINDOW, SPANS, MIN_TICKETS, seconds, poisson_tail = (
    oracle.WINDOW, oracle.SPANS, oracle.MIN_TICKETS, oracle.seconds, oracle.poisson_tail)
MIN_CUSTOMERS = 5
MIN_HISTORY = 2 * 3600  # a ball's rate needs some history; f's stream lasts only 5.5 hours
DIM = 384


def masked_text(t):
    subject, body = t.get("subject") or "", t.get("body") or ""
    text = body if body.startswith(subject.strip()) else subject + "\n" + body
    personal = [t["customer"]["id"], *(t["customer"].get("name") or "").split()]
    out = []
    for word in text.split():
        bare = word.strip("".join(c for c in set(word) if not c.isalnum()))
        user, at, domain = bare.partition("@")
        if word.lower().startswith(("http://", "https://", "www.")):
            out.append("xurlx")
        elif at and user and "." in domain:
            out.append("xemailx")
        elif any(c.isascii() and c.isdigit() for c in bare):
            out.append("xnumx")
        elif bare and any(same_ignoring_ascii_case(p, bare) for p in personal):
            out.append("xnamex")
        else:
            out.append(word)
    return " ".join(out)


def same_ignoring_ascii_case(a, b):
    return len(a) == len(b) and all(
        x == y or (x.isascii() and y.isascii() and x.lower() == y.lower()) for x, y in zip(a, b))


def vectors(cache, texts):
    distinct = sorted(set(texts), key=str.encode)
    # The cache is named by the SHA-256 of its texts (as `embed_cached` names it): a masking that
    # drifted from sevloop's would name another file.
    digest = hashlib.sha256(b"".join(t.encode() + b"\0" for t in distinct)).hexdigest()[:16]
    if not Path(cache).stem.endswith(digest):
        sys.exit(f"{cache} holds other texts than these streams' (their digest is {digest})")
    table = np.fromfile(cache, dtype="<f4")
    if table.size != len(distinct) * DIM:
        sys.exit(f"{cache}: {table.size // DIM} vectors for {len(distinct)} distinct texts")
    place = {t: i for i, t in enumerate(distinct)}
    return table.reshape(-1, DIM)[[place[t] for t in texts]]


def fires(tickets, vec, radius, alpha, history):
    """(ticket index, p-value, usual per window, ball members in the window) per firing."""
    times = np.array([seconds(t["event_time"]) for t in tickets])
    product = np.array([t["product"] for t in tickets])
    customer = [t["customer"]["id"] for t in tickets]
    out, block = [], 512
    for start in range(0, len(tickets), block):
        end = min(len(tickets), start + block)
        lo = int(np.searchsorted(times, times[start] - history - WINDOW))
        sims = vec[start:end] @ vec[lo:end].T
        for i in range(start, end):
            now = times[i]
            since = max(times[0], now - WINDOW - history)
            watched = now - WINDOW - since
            if watched < MIN_HISTORY:
                continue
            near = (sims[i - start, : i - lo + 1] >= radius) & (product[lo : i + 1] == product[i])
            when = times[lo : i + 1]
            ball = np.flatnonzero(near & (when > now - WINDOW)) + lo
            if len(ball) < MIN_TICKETS or len({customer[j] for j in ball}) < MIN_CUSTOMERS:
                continue
            before = int((near & (when >= since) & (when <= now - WINDOW)).sum())
            usual = (before + 1) / (watched / WINDOW)  # one ticket of prior: a new ball is not empty
            p = min(
                poisson_tail(len({customer[j] for j in ball if times[j] > now - s}), usual * s / WINDOW)
                for s in SPANS
            )
            if p <= alpha / (math.sqrt(max(usual, 1.0)) * len(SPANS)):
                out.append((i, p, usual, set(ball.tolist())))
    return out


def score(base, cache, radius, alpha, history):
    tickets = [json.loads(line) for line in open(base + ".tickets.jsonl")]
    tickets.sort(key=lambda t: seconds(t["event_time"]))
    truth = {r["ticket_id"]: r for r in map(json.loads, open(base + ".truth.jsonl"))}
    rows = [truth[t["ticket_id"]] for t in tickets]
    fired = fires(tickets, vectors(cache, [masked_text(t) for t in tickets]), radius, alpha, history)
    found, claimed = {}, set()
    for incident in json.load(open(base + ".incidents.json"))["incidents"]:
        members = [j for j, r in enumerate(rows) if r["injected"] and r["label"] == incident["label"]]
        mine = set(members)
        # A firing is the incident's when its ticket is one of the burst's, or half its ball is.
        ours = [f for f in fired if f[0] in mine or len(f[3] & mine) * 2 >= len(f[3])]
        claimed |= {f[0] for f in ours}
        found[(incident["label"], incident["kind"])] = (
            None if not ours else sum(1 for j in members if j <= ours[0][0]))
    # Other firings are false; one whose ball overlaps a false episode's latest ball within 2 h
    # carries that episode on.
    episodes = []
    for i, p, usual, ball in fired:
        if i in claimed:
            continue
        now = seconds(tickets[i]["event_time"])
        going = next((e for e in episodes
                      if now - e["at"] < 7200 and len(ball & e["ball"]) * 10 >= 3 * len(ball)), None)
        if going:
            going.update(at=now, ball=ball)
        else:
            episodes.append({"at": now, "ball": ball,
                             "what": f"{rows[i]['label']} p={p:.2g} usual={usual:.2f}"})
    return found, [e["what"] for e in episodes]


def main():
    if len(sys.argv) < 2 or "CACHE" not in os.environ:
        sys.exit(__doc__)
    radius = float(os.environ.get("RADIUS", "0.55"))
    alpha = float(os.environ.get("ALPHA", "5e-6"))
    history = float(os.environ.get("HISTORY", "24")) * 3600
    incidents = found = within = false_sevs = 0
    for base in sys.argv[1:]:
        name = os.path.basename(base)
        hits, false = score(base, os.environ["CACHE"], radius, alpha, history)
        for (label, kind), at in hits.items():
            print(f"{name} {kind} {label}: fires at its ticket {at or '-'}")
            if kind == "incident":
                incidents += 1
                found += at is not None
                within += at is not None and at <= 10
            else:
                false_sevs += at is not None
        for f in false:
            print(f"{name} false: {f}")
        false_sevs += len(false)
    print(f"radius {radius}, alpha {alpha}: found {found}/{incidents}, within 10 tickets {within}, "
          f"false or decoy {false_sevs}")


if __name__ == "__main__":
    main()
