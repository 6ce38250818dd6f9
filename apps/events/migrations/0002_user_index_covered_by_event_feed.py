import django.db.models.deletion
from django.db import migrations, models

# Issue 18, write amplification: every receipt and send inserts events, and each index of events_event is one more
# insert. The foreign-key index Django adds by default on user_id serves no query: each one on user_id is served by
# event_feed (user_id, id) (EXPLAIN of each: bench/index_plans.py, docs/PERFORMANCE.md).
# Only the index is dropped (SeparateDatabaseAndState): a plain AlterField would also drop and re-add the
# foreign-key constraint, which re-validates every row of the table under lock.
INDEX = "events_event_user_id_39865209"


class Migration(migrations.Migration):

    dependencies = [
        ("events", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="event",
                    name="user",
                    field=models.ForeignKey(
                        db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="+",
                        to="chat.chatuser",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(f'DROP INDEX IF EXISTS "{INDEX}"', f'CREATE INDEX "{INDEX}" ON "events_event" ("user_id")'),
            ],
        ),
    ]
