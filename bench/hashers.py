"""The bench server's password hasher (see bench/settings.py)."""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class BenchPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """PBKDF2 with 1,000 iterations: only the data-building logins of the bench hash passwords."""

    iterations = 1_000
