"""The simulator's work queue keeps client-go's contract: one worker per key, nothing lost."""

from __future__ import annotations

import threading
import time

from phalanx_sandbox.simulator import WorkQueue


def test_a_key_is_queued_once_until_taken() -> None:
    queue = WorkQueue()
    queue.add(("pods", "a"))
    queue.add(("pods", "a"))
    queue.add(("pods", "b"))
    assert queue.get() == ("pods", "a")
    assert queue.get() == ("pods", "b")
    queue.close()
    assert queue.get() is None


def test_a_key_added_while_processing_is_processed_again_after_done() -> None:
    queue = WorkQueue()
    queue.add(("pods", "a"))
    item = queue.get()
    queue.add(("pods", "a"))  # changed while a worker holds it
    taken: list[tuple[str, str] | None] = []
    other = threading.Thread(target=lambda: taken.append(queue.get()))
    other.start()
    queue.add(("pods", "b"))  # the waiting worker gets b, not the a that a worker holds
    other.join(2)
    assert taken == [("pods", "b")]
    assert item is not None
    queue.done(item)
    assert queue.get() == ("pods", "a")  # processed again after done


def test_add_after_delays_delivery() -> None:
    queue = WorkQueue()
    start = time.monotonic()
    queue.add_after(("nodes", "n"), 0.3)
    assert queue.get() == ("nodes", "n")
    assert time.monotonic() - start >= 0.3
