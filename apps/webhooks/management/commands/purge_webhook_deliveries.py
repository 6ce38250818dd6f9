"""`manage.py purge_webhook_deliveries [--dry-run]`: the beat task's purge of old webhook deliveries, by hand."""

from apps.common.purge_command import PurgeCommand
from apps.webhooks.purge import webhook_deliveries_purge_expired


class Command(PurgeCommand):
    help = (
        "Delete the webhook deliveries older than WEBHOOK_DELIVERY_RETENTION_DAYS, in short batches. "
        "Ends with the line 'purged: N' ('would purge: N' with --dry-run)."
    )
    purge = staticmethod(webhook_deliveries_purge_expired)
