"""`manage.py purge_group_acks [--dry-run]`: the beat task's purge, run by hand with progress (SPEC §6)."""

from django.core.management.base import BaseCommand, CommandError

from apps.receipts.purge import group_acks_purge_expired


class Command(BaseCommand):
    help = (
        "Delete the group read acks of messages older than each app's group_ack_ttl_days, in short batches. "
        "Ends with the line 'purged: N' ('would purge: N' with --dry-run)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")
        parser.add_argument("--batch-size", type=int, default=None, help="Rows per transaction (PURGE_BATCH_SIZE).")

    def handle(self, *args, dry_run=False, batch_size=None, verbosity=1, **options):
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        # On a terminal one line per app is rewritten after every batch; in a
        # log (not a tty) each app gets one line when it is done, each batch
        # one more with -v 2.
        tty = self.stdout.isatty()
        current = {"scope": None, "rows": 0, "batches": 0}

        def finish_scope():
            if current["scope"] is None:
                return
            if tty:
                self.stdout.write("")
            else:
                self.stdout.write(f"{current['scope']}: {current['rows']} rows in {current['batches']} batches")
            current["scope"] = None

        def show(step):
            if step.dry_run:
                if step.rows:
                    self.stdout.write(f"{step.scope}: would purge {step.rows}")
                return
            if step.scope != current["scope"]:
                finish_scope()
                current["scope"] = step.scope
            current["rows"], current["batches"] = step.scope_rows, step.batch
            if tty:
                self.stdout.write(f"\r{step.scope}: {step.scope_rows} rows (batch {step.batch})", ending="")
                self.stdout.flush()
            elif verbosity >= 2:
                self.stdout.write(f"{step.scope}: batch {step.batch}, {step.rows} rows")

        total = group_acks_purge_expired(batch_size=batch_size, dry_run=dry_run, progress=show)
        finish_scope()
        self.stdout.write(f"{'would purge' if dry_run else 'purged'}: {total}")
