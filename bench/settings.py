"""Settings of the benchmark server: the production settings with one override.

Password hashing: the scenarios create and log in hundreds of users to build their data, and Django's
default PBKDF2 (1,000,000 iterations, ~0.33 s of CPU each here) would spend minutes on that alone. No
measured call checks a password, so the bench hashes with 1,000 iterations. Everything else (database,
cache, middleware, DRF, gunicorn.conf.py) is what production runs.
"""

from receipts_console.settings import *  # noqa: F403

PASSWORD_HASHERS = ["bench.hashers.BenchPBKDF2PasswordHasher"]
