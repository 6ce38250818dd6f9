import django.db.models.deletion
from django.db import migrations, models

# Issue 18, write amplification: a send updates both conversation rows and last_timestamp is indexed, so the
# updates are not HOT and write every index of chat_conversation; the foreign-key index Django adds by default on
# owner_id serves no query (uniq_conversation_owner_peer and conversation_owner_recent start with owner_id). The
# refusal counter's app_id index is covered by its unique (app_id, day, kind, reason, shard) likewise.
# EXPLAIN of each query: bench/index_plans.py, docs/PERFORMANCE.md.
# Only the index is dropped (SeparateDatabaseAndState): a plain AlterField would also drop and re-add the
# foreign-key constraint, which re-validates every row of the table under lock.
DROPPED = [
    ("conversation", "chat_conversation", "owner", "owner_id", "chat_conversation_owner_id_0460d4a2"),
    ("refusaldailycount", "chat_refusaldailycount", "app", "app_id", "chat_refusaldailycount_app_id_4f68f5aa"),
]


class Migration(migrations.Migration):

    dependencies = [
        ("chat", "0007_group_receipt_override_and_refusals"),
        ("tenancy", "0002_seed_plans_and_roles"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="conversation",
                    name="owner",
                    field=models.ForeignKey(
                        db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="conversations",
                        to="chat.chatuser",
                    ),
                ),
                migrations.AlterField(
                    model_name="refusaldailycount",
                    name="app",
                    field=models.ForeignKey(
                        db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="+",
                        to="tenancy.app",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(f'DROP INDEX IF EXISTS "{index}"', f'CREATE INDEX "{index}" ON "{table}" ("{column}")')
                for _, table, _, column, index in DROPPED
            ],
        ),
    ]
