from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "apps.events"
    label = "events"

    def ready(self):
        from . import selectors, wakeup

        # The wake-up re-check's one query per period (wakeup.py): the newest event of each waiting user.
        wakeup.read_tails_with(selectors.feed_tails)
