"""Seed the plan tiers of SPEC §2 and the staff role groups."""

from django.db import migrations

PLANS = [
    # code, name, rank, group_read_ack_allowed, message_retention_days
    ("free", "Free", 1, False, 3),
    ("pro", "Pro", 2, True, 7),
    ("ultimate", "Ultimate", 3, True, 90),
    ("enterprise", "Enterprise", 4, True, 180),
]
ROLES = ("operator", "business")


def seed(apps, schema_editor):
    PlanTier = apps.get_model("tenancy", "PlanTier")
    Group = apps.get_model("auth", "Group")
    for code, name, rank, allowed, retention in PLANS:
        PlanTier.objects.update_or_create(
            code=code,
            defaults={"name": name, "rank": rank, "group_read_ack_allowed": allowed,
                      "message_retention_days": retention},
        )
    for role in ROLES:
        Group.objects.get_or_create(name=role)


class Migration(migrations.Migration):
    dependencies = [
        ("tenancy", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
