"""A purge task stopped by Celery's soft time limit reports the rows it finished and loses nothing."""

import logging

from celery.exceptions import SoftTimeLimitExceeded

from apps.common.batching import PurgeProgress, purge_until_time_limit


def test_purge_until_time_limit__finishes__returns_purge_total():
    assert purge_until_time_limit(lambda progress: 42, label="test purge", logger=logging.getLogger("t")) == 42


def test_purge_until_time_limit__soft_limit_mid_run__returns_rows_of_committed_batches(caplog):
    def purge(progress):
        progress(PurgeProgress(scope="acme#chat", batch=1, rows=1000, scope_rows=1000, total_rows=1000))
        progress(PurgeProgress(scope="acme#chat", batch=2, rows=1000, scope_rows=2000, total_rows=2000))
        raise SoftTimeLimitExceeded()  # raised inside batch 3, which rolls back

    with caplog.at_level(logging.WARNING):
        done = purge_until_time_limit(purge, label="test purge", logger=logging.getLogger("t"))
    assert done == 2000
    assert "test purge stopped at its time limit after 2000 rows" in caplog.text
