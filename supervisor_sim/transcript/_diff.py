"""Comparing two transcripts: two runs, or two runtimes on the same task.

Frames are aligned position by position in each direction, after normalising volatile values
(timestamps, ids, pids), and every difference is reported per field. HTTP calls are compared as
the sequence of (method, path, status) with heartbeats counted, not matched one by one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ._reader import Transcript, frame_body
from ._replay import diff_values, normalise, run_substitutions

__all__ = ["TranscriptDiff", "diff_transcripts"]


@dataclass
class TranscriptDiff:
    differences: list[str] = field(default_factory=list)

    @property
    def equivalent(self) -> bool:
        return not self.differences


def _frames(t: Transcript, direction: str) -> list[dict[str, Any]]:
    return t.frames(direction)


def _http_calls(t: Transcript) -> tuple[list[str], int]:
    calls, beats = [], 0
    subs = run_substitutions(t.header)
    for r in t.http():
        if r["path"].endswith("/heartbeat"):
            beats += 1
            continue
        path = "/".join(
            "<uuid>" if len(p) == 36 and p.count("-") == 4 else p
            for p in normalise(r["path"], subs=subs).split("/")
        )
        calls.append(f"{r['method']} {path} -> {r.get('status')}")
    return calls, beats


def diff_transcripts(a: Transcript, b: Transcript) -> TranscriptDiff:
    out = TranscriptDiff()
    sa, sb = run_substitutions(a.header), run_substitutions(b.header)
    for direction, label in (("in", "runtime -> supervisor"), ("out", "supervisor -> runtime")):
        fa, fb = _frames(a, direction), _frames(b, direction)
        for i in range(max(len(fa), len(fb))):
            ra = fa[i] if i < len(fa) else None
            rb = fb[i] if i < len(fb) else None
            if ra is None or rb is None:
                present = ra or rb
                side = "A" if ra is not None else "B"
                out.differences.append(
                    f"{label} frame #{i}: only in {side}: {present.get('type')} (id "
                    f"{present.get('id')})"
                )
                continue
            if ra.get("type") != rb.get("type"):
                out.differences.append(
                    f"{label} frame #{i}: type {ra.get('type')} in A, {rb.get('type')} in B"
                )
                continue
            diffs = diff_values(
                normalise(frame_body(ra), subs=sa), normalise(frame_body(rb), subs=sb), "body"
            )
            if ra.get("id") != rb.get("id"):
                diffs.insert(0, f"id: {ra.get('id')} in A, {rb.get('id')} in B")
            if normalise(ra.get("error")) != normalise(rb.get("error")):
                diffs += diff_values(
                    normalise(ra.get("error")), normalise(rb.get("error")), "error"
                )
            for d in diffs:
                out.differences.append(f"{label} frame #{i} {ra.get('type')}: {d}")
    ca, _ = _http_calls(a)
    cb, _ = _http_calls(b)
    if ca != cb:
        counter_a, counter_b = Counter(ca), Counter(cb)
        for call in sorted(set(counter_a) | set(counter_b)):
            if counter_a[call] != counter_b[call]:
                out.differences.append(
                    f"http {call}: {counter_a[call]} in A, {counter_b[call]} in B"
                )
        if counter_a == counter_b:
            out.differences.append("http: the same calls in a different order")
    fa_, fb_ = a.footer or {}, b.footer or {}
    if fa_.get("final_state") != fb_.get("final_state"):
        out.differences.append(
            f"final state: {fa_.get('final_state')} in A, {fb_.get('final_state')} in B"
        )
    return out
