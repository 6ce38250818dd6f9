from django.apps import AppConfig


class ReceiptsConfig(AppConfig):
    name = "apps.receipts"
    label = "receipts"

    def ready(self) -> None:
        # Handing out a single-chat message records its delivery: the feed calls this app back rather than
        # importing it (this app writes to the feed; the dependency runs one way, receipts -> events).
        from apps.events.services import handout_recorder_add

        from .services import deliveries_record

        handout_recorder_add(deliveries_record)
