"""The shape every purge command shares (SPEC §6, §9): progress while it runs, `purged: N` as the last line."""

from __future__ import annotations

from collections.abc import Callable

from django.core.management.base import BaseCommand, CommandError

from .batching import ProgressCallback


class PurgeCommand(BaseCommand):
    """`manage.py <purge> [--dry-run] [--batch-size N]`: runs `purge`, shows its progress, ends with the total.

    Subclasses set `help` and `purge`, a service taking (batch_size=, dry_run=, progress=) and returning rows.
    """

    purge: Callable[..., int]

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")
        parser.add_argument("--batch-size", type=int, default=None, help="Rows per transaction (PURGE_BATCH_SIZE).")

    def handle(self, *args, dry_run=False, batch_size=None, verbosity=1, **options):
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        total = type(self).purge(batch_size=batch_size, dry_run=dry_run, progress=self._progress(verbosity))
        self._finish_scope()
        self.stdout.write(f"{'would purge' if dry_run else 'purged'}: {total}")

    def _progress(self, verbosity: int) -> ProgressCallback:
        # On a terminal one line per scope (an app, a kind of token) is rewritten after every batch; in a
        # log (not a tty) each scope gets one line when it is done, each batch one more with -v 2.
        self._tty = self.stdout.isatty()
        self._current = {"scope": None, "rows": 0, "batches": 0}

        def show(step):
            if step.dry_run:
                if step.rows:
                    self.stdout.write(f"{step.scope}: would purge {step.rows}")
                return
            if step.scope != self._current["scope"]:
                self._finish_scope()
                self._current["scope"] = step.scope
            self._current["rows"], self._current["batches"] = step.scope_rows, step.batch
            if self._tty:
                self.stdout.write(f"\r{step.scope}: {step.scope_rows} rows (batch {step.batch})", ending="")
                self.stdout.flush()
            elif verbosity >= 2:
                self.stdout.write(f"{step.scope}: batch {step.batch}, {step.rows} rows")

        return show

    def _finish_scope(self) -> None:
        current = self._current
        if current["scope"] is None:
            return
        if self._tty:
            self.stdout.write("")
        else:
            self.stdout.write(f"{current['scope']}: {current['rows']} rows in {current['batches']} batches")
        current["scope"] = None
