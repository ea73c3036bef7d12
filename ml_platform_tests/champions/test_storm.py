"""Threads making mixed promotions and rollbacks on one model: no entry lost, none twice, no fork.

``make test`` runs a storm of 4 threads x 10 moves on each database, ``make stress`` one of 16 x 50.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter

import pytest

from ml_platform.champions import ChampionLedger, LedgerEntry
from ml_platform.errors import LedgerConflict, LedgerMoveRefused


@pytest.mark.parametrize(("threads", "calls"), [(4, 10), pytest.param(16, 50, marks=pytest.mark.stress)])
def test_storm_of_mixed_moves_keeps_one_verified_chain(ledger_url: str, threads: int, calls: int) -> None:
    ledger = ChampionLedger(ledger_url, busy_timeout_seconds=30)
    succeeded: list[tuple[str, LedgerEntry]] = []
    outcomes: Counter[str] = Counter()
    champions: set[str] = set()  # versions some thread saw recorded as champion (valid rollback targets)
    lock, barrier = threading.Lock(), threading.Barrier(threads)
    errors: list[BaseException] = []

    def worker(thread: int) -> None:
        rng = random.Random(thread)
        barrier.wait()
        for call in range(calls):
            token = f"thread {thread:02d} call {call:02d}"
            with lock:
                known = sorted(champions)
            rollback = bool(known) and rng.random() < 0.4
            kind, version = ("rollback", rng.choice(known)) if rollback else ("promotion", str(rng.randint(1, 40)))
            path = "move" if rng.random() < 0.7 else "append"
            try:
                if path == "move":  # the convenience: the head read under the lock, bounded retries
                    entry = ledger.move("storm", kind=kind, to_version=version, actor=f"thread-{thread}",
                                        reason=token)
                else:  # one bare compare-and-set on the head this thread just read
                    head = ledger.head("storm")
                    entry = ledger.append("storm", expected_head_seq=head.seq if head else 0, kind=kind,
                                          to_version=version, actor=f"thread-{thread}", reason=token)
            except LedgerConflict:
                outcome = "conflict"
            except LedgerMoveRefused:
                outcome = "refused"
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)
                return
            else:
                outcome = "recorded"
                with lock:
                    succeeded.append((token, entry))
                    champions.add(entry.to_version)
            with lock:
                outcomes[f"{path} {outcome}"] += 1

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    print(f"storm on {ledger_url.split(':')[0]}: {dict(outcomes)} in {elapsed:.1f} s")
    assert not errors, errors
    assert sum(outcomes.values()) == threads * calls
    recorded = outcomes["move recorded"] + outcomes["append recorded"]
    assert recorded >= threads * calls // 2, outcomes

    history = ledger.history("storm")
    report = ledger.verify("storm")
    assert report.ok and report.entries == len(history) == len(succeeded)
    assert [e.seq for e in history] == list(range(1, len(history) + 1))
    reasons = Counter(e.reason for e in history)
    assert set(reasons) == {token for token, _ in succeeded} and set(reasons.values()) == {1}  # each once
    for token, entry in succeeded:  # what each caller was told is exactly what the ledger holds
        assert history[entry.seq - 1] == entry and entry.reason == token
    for before, after in itertools.pairwise(history):
        assert after.prev_hash == before.entry_hash and after.from_version == before.to_version
    assert ledger.head("storm") == history[-1]
    assert {e.kind for e in history} == {"promotion", "rollback"}
    ledger.close()
