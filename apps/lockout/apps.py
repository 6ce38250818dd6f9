from django.apps import AppConfig


class LockoutConfig(AppConfig):
    name = "apps.lockout"
    label = "lockout"
