"""`manage.py purge_messages [--dry-run]`: the beat task's message retention purge, by hand (SPEC §9)."""

from apps.chat.purge import messages_purge_expired
from apps.common.purge_command import PurgeCommand


class Command(PurgeCommand):
    help = (
        "Delete the messages older than their app plan's message_retention_days, with their group acks, "
        "keeping unread counts exact, in short batches. Ends with the line 'purged: N' ('would purge: N' "
        "with --dry-run)."
    )
    purge = staticmethod(messages_purge_expired)
