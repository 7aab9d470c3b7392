"""Crash safety: a writer killed with SIGKILL mid-sequence loses nothing it reported as committed,
and writing the same client order id again after the restart creates no duplicate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from sqlalchemy import func, select

from serve.execution import journal_schema as t
from serve.execution.journal import Journal
from serve.execution.records import OrderRecord, OrderStatus

ROOT = Path(__file__).resolve().parents[3]
WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from serve.execution.journal import Journal
    from serve.execution.records import FillRecord, OrderRecord

    journal = Journal(sys.argv[1])
    for i in range(100_000):
        journal.record_order(OrderRecord(f"cid-{i}", "binance:BTC/USDT", 0.01, decision_id=f"d-{i}"))
        journal.record_fill(FillRecord(f"fill-{i}", f"cid-{i}", "binance:BTC/USDT", 0.01, 100.0 + i, 0.001,
                                       datetime(2024, 1, 1, tzinfo=UTC)))
        print(i, flush=True)  # only after both commits returned
    """
)


def test_sigkill_mid_sequence_loses_nothing_committed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, url], stdout=subprocess.PIPE, text=True, env=env)
    assert writer.stdout is not None
    committed = -1
    deadline = time.monotonic() + 30
    while committed < 60 and time.monotonic() < deadline:
        line = writer.stdout.readline()
        if not line:
            break
        committed = int(line)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=10)
    assert writer.returncode == -signal.SIGKILL
    assert committed >= 60, "the writer did not get going"

    with Journal(url) as journal:
        orders = {o.client_order_id: o for o in journal.orders()}
        fills = {f.exchange_fill_id for f in journal.fills()}
        for i in range(committed + 1):  # everything reported committed is there, complete
            assert orders[f"cid-{i}"].status is OrderStatus.FILLED
            assert f"fill-{i}" in fills
        # at most the one in-flight order beyond the last report, and never a fill without its order effect
        assert len(orders) <= committed + 2
        assert all(orders[f"cid-{f.split('-')[1]}"].filled_quantity == 0.01 for f in fills)

        # the restarted actor re-sends the order it was writing: no duplicate appears
        again = journal.record_order(
            OrderRecord(f"cid-{committed}", "binance:BTC/USDT", 0.01, decision_id=f"d-{committed}")
        )
        assert again.status is OrderStatus.FILLED
        with journal.engine.connect() as conn:
            count = conn.execute(
                select(func.count())
                .select_from(t.orders)
                .where(t.orders.c.client_order_id == f"cid-{committed}")
            ).scalar()
        assert count == 1
        assert len(journal.orders()) == len(orders)
