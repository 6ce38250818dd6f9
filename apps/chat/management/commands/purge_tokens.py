"""`manage.py purge_tokens [--dry-run]`: the beat task's purge of expired bearer tokens, by hand (SPEC §9)."""

from apps.chat.purge import tokens_purge_expired
from apps.common.purge_command import PurgeCommand


class Command(PurgeCommand):
    help = (
        "Delete the expired access tokens (app API) and staff tokens (admin API), in short batches. "
        "Ends with the line 'purged: N' ('would purge: N' with --dry-run)."
    )
    purge = staticmethod(tokens_purge_expired)
