"""The plan tiers migration 0002 seeds (SPEC §2), as plain data: the schema's enum and the policy description.

tests/common/test_schema.py checks that these codes and the seeded rows agree.
"""

PLAN_CODES = ("free", "pro", "ultimate", "enterprise")
DEFAULT_PLAN = "free"
