"""Deleting many rows without a long transaction: the shared loop of the purges (SPEC §6)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.db import connections, transaction
from django.db.models import Model, QuerySet

from apps.common import metrics


@dataclass(frozen=True)
class PurgeProgress:
    """One step of a purge, for a progress display: a committed batch, or an app's count in a dry run."""

    scope: str  # the app key ("org#app"), or "events"
    batch: int  # 1, 2, … within `scope`; 0 for a dry-run count
    rows: int  # rows of this step
    scope_rows: int  # rows of `scope` so far
    total_rows: int  # rows of the whole run so far
    dry_run: bool = False


ProgressCallback = Callable[[PurgeProgress], None]


class PurgeTally:
    """What a purge run has deleted, scope by scope (an app, a kind of token, "events"): each committed batch
    is counted in the purged-rows metric (`purge` is its label) and reported to `progress`, if given."""

    def __init__(self, purge: str, progress: ProgressCallback | None):
        self.purge, self.progress = purge, progress
        self.total = 0  # rows of the whole run so far
        self.scope, self.scope_rows, self.batches = "", 0, 0

    def begin(self, scope: str) -> None:
        self.scope, self.scope_rows, self.batches = scope, 0, 0

    def would_delete(self, rows: int) -> None:
        """A dry run's count of the scope (nothing deleted, nothing in the metric)."""
        self.total += rows
        if self.progress is not None:
            self.progress(PurgeProgress(self.scope, 0, rows, rows, self.total, dry_run=True))

    def deleted(self, rows: int) -> None:
        """A batch of the scope has committed (delete_in_batches' `on_batch`)."""
        metrics.PURGED[self.purge].inc(rows)
        self.scope_rows += rows
        self.batches += 1
        self.total += rows
        if self.progress is not None:
            self.progress(PurgeProgress(self.scope, self.batches, rows, self.scope_rows, self.total))

APPS_PER_PAGE = 500


def per_app(queryset: QuerySet, *, app_id: str, app: str, value: str) -> Iterator[tuple[int, str, int]]:
    """(app id, app key "org#app", `value`) of every row of `queryset`, one per app, a page at a time in app id
    order: what an app-by-app purge walks. `app_id` is the field holding the app's id, `app` the path to the
    App ("" on App itself, "app__" on a row pointing to it), `value` the field read with it. Read from the
    database, not a cached snapshot: a worker's cache may be its own process memory, which a change made by
    the web process does not invalidate, so a plan or policy change applies at the next run."""
    last_id = 0
    while True:
        page = list(
            queryset.filter(**{f"{app_id}__gt": last_id})
            .order_by(app_id)
            .values_list(app_id, f"{app}org_name", f"{app}app_name", value)[:APPS_PER_PAGE]
        )
        for row_app_id, org_name, app_name, row_value in page:
            yield row_app_id, f"{org_name}#{app_name}", row_value
        if len(page) < APPS_PER_PAGE:
            return
        last_id = page[-1][0]


def delete_in_batches(
    *,
    queryset: QuerySet,
    order_field: str,
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
    fields: tuple[str, ...] = (),
    delete_batch: Callable[[list[tuple]], int] | None = None,
) -> int:
    """Delete every row of `queryset`, at most `batch_size` per short transaction; returns rows deleted.

    - Each batch selects ids on the index of `order_field` (the queryset's filter
      must be served by an index ending in it), then deletes by primary key:
      two queries a batch, memory bounded by `batch_size` whatever the row count.
    - `FOR UPDATE SKIP LOCKED` (PostgreSQL; SQLite serialises writers anyway):
      a concurrent run of the same purge takes other rows instead of waiting
      on or deadlocking with this one, and each row is counted by the run
      whose DELETE removed it, so two runs at once add up to the truth.
    - The next batch starts at the last `order_field` value seen (inclusive:
      equal values may remain), so a batch never rescans the dead index
      entries left by earlier batches.
    - The DELETE repeats the queryset's filter: a row is removed only if it
      still matches when deleted.
    - A batch shorter than `batch_size` ends the run: what was missing was
      locked by a concurrent run, which deletes it.
    - `on_batch(rows)` is called after each batch has committed.
    - `delete_batch(rows)`, when given, deletes the batch instead, inside its transaction, and returns the
      rows it deleted: `rows` are the locked (pk, order_field, *fields) tuples, so it can write what
      must change with them in the same transaction (the group-ack purge closes their messages). A batch
      it deleted nothing of ends the run (what it left is for the next run).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    total = 0
    lower_bound = None
    while True:
        with transaction.atomic(using=queryset.db):
            candidates = queryset
            if lower_bound is not None:
                candidates = candidates.filter(**{f"{order_field}__gte": lower_bound})
            rows = list(
                candidates.select_for_update(skip_locked=True)
                .order_by(order_field)
                .values_list("pk", order_field, *fields)[:batch_size]
            )
            if not rows:
                break
            if delete_batch is None:
                deleted, _ = queryset.filter(pk__in=[row[0] for row in rows]).delete()
            else:
                deleted = delete_batch(rows)
        total += deleted
        if on_batch is not None and deleted:
            on_batch(deleted)
        if len(rows) < batch_size or not deleted:
            break
        lower_bound = rows[-1][1]
    return total


def purge_until_time_limit(purge: Callable[..., int], *, label: str, logger) -> int:
    """Run `purge(progress=...)` as a Celery task body; at the soft time limit, stop and return the rows done.

    The batch in flight rolls back with its transaction; the next scheduled run
    goes on from there, so stopping early loses nothing.
    """
    from celery.exceptions import SoftTimeLimitExceeded

    done = 0

    def count(step: PurgeProgress) -> None:
        nonlocal done
        done = step.total_rows

    try:
        return purge(progress=count)
    except SoftTimeLimitExceeded:
        logger.warning("%s stopped at its time limit after %d rows; the next run goes on", label, done)
        return done


def counter_decrement(*, model: type[Model], field: str, amounts: dict[int, int], using: str = "default",
                      also_set: str = "") -> None:
    """`field -= amounts[pk]` (never below 0) on every row of `model` in `amounts`, in one UPDATE, for a purge
    that removes what a counter counts in the same transaction. `also_set` is a further `column = literal`.

    Written as one `CASE id WHEN … THEN …` rather than Case(When(...)): Django resolves each When as a
    filter, which took most of a batch's time at a thousand rows (profiled: 20 s of 27 on 20 batches).
    """
    if not amounts:
        return
    connection = connections[using]
    quote = connection.ops.quote_name
    table, column, pk = quote(model._meta.db_table), quote(model._meta.get_field(field).column), quote(
        model._meta.pk.column)
    greatest = "GREATEST" if connection.vendor == "postgresql" else "MAX"
    whens = " ".join(["WHEN %s THEN %s"] * len(amounts))
    placeholders = ", ".join(["%s"] * len(amounts))
    sets = f"{column} = {greatest}({column} - CASE {pk} {whens} END, 0)" + (f", {also_set}" if also_set else "")
    params = [value for item in amounts.items() for value in item] + list(amounts)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {sets} WHERE {pk} IN ({placeholders})", params)
