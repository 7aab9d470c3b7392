"""The bounded message queue and batching into Telegram-sized texts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from serve.notify.message import Message, Priority
from serve.notify.queue import MessageQueue, batch_texts

LOW, NORMAL, HIGH = Priority.LOW, Priority.NORMAL, Priority.HIGH


def texts(messages: list[Message]) -> list[str]:
    return [m.text for m in messages]


def test_full_queue_drops_the_oldest_lowest_priority_message() -> None:
    dropped: list[Message] = []
    queue = MessageQueue(3, on_drop=dropped.append)
    for text, priority in [("a", NORMAL), ("b", LOW), ("c", LOW)]:
        assert queue.put(Message(text, priority)) is None
    assert queue.put(Message("d", HIGH)).text == "b"  # type: ignore[union-attr]
    assert queue.put(Message("e", LOW)).text == "c"  # type: ignore[union-attr]
    assert queue.put(Message("f", LOW)).text == "e"  # type: ignore[union-attr]
    assert texts(queue.take(10)) == ["a", "d", "f"]
    assert texts(dropped) == ["b", "c", "e"]
    assert queue.dropped == {LOW: 3} and queue.total_dropped == 3


def test_a_message_below_everything_queued_is_the_one_dropped() -> None:
    queue = MessageQueue(2)
    queue.put(Message("alert 1", HIGH))
    queue.put(Message("alert 2", HIGH))
    victim = queue.put(Message("fill", LOW))
    assert victim is not None and victim.text == "fill"
    assert texts(queue.take(5)) == ["alert 1", "alert 2"]


def test_take_is_fifo_and_bounded() -> None:
    queue = MessageQueue(10)
    messages = [Message(str(i), LOW, created=100.0 + i) for i in range(5)]
    for message in messages:
        queue.put(message)
    assert texts(queue.take(3)) == ["0", "1", "2"]
    assert len(queue) == 2
    assert queue.oldest_age(110.0) == 7.0  # message "3" was created at 103
    assert queue.has_priority(LOW) and not queue.has_priority(HIGH)


def test_batch_texts_split_at_the_limit_and_cut_oversized_messages() -> None:
    messages = [Message("a" * 6), Message("b" * 3), Message("c" * 20)]
    assert batch_texts(messages, limit=10) == ["aaaaaa\nbbb", "ccccccccc…"]


@given(
    st.lists(st.text(st.characters(blacklist_characters="\n"), min_size=1, max_size=30), max_size=40),
    st.integers(31, 200),
)
def test_batching_keeps_every_text_in_order_within_the_limit(parts: list[str], limit: int) -> None:
    batches = batch_texts([Message(p) for p in parts], limit=limit)
    assert all(len(b) <= limit for b in batches)
    assert [line for b in batches for line in b.split("\n")] == parts
