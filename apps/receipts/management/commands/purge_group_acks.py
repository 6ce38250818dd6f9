"""`manage.py purge_group_acks [--dry-run]`: the beat task's purge, run by hand with progress (SPEC §6)."""

from apps.common.purge_command import PurgeCommand
from apps.receipts.purge import group_acks_purge_expired


class Command(PurgeCommand):
    help = (
        "Delete the group read acks of messages older than each app's group_ack_ttl_days, in short batches, "
        "and close those messages to acks for good. Ends with the line 'purged: N' ('would purge: N' with "
        "--dry-run)."
    )
    purge = staticmethod(group_acks_purge_expired)
