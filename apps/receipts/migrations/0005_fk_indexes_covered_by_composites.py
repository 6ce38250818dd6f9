import django.db.models.deletion
from django.db import migrations, models

# Issue 18, write amplification: every group ack inserts one receipts_groupack row, and each index of the table is
# one more insert. The foreign-key indexes Django adds by default on app and message serve no query: every query
# on app_id is served by groupack_app_age (app_id, message_timestamp), every one on message_id by
# uniq_groupack_message_reader (message_id, reader_id) or groupack_message_readers (message_id, acked_at, id)
# (EXPLAIN of each: bench/index_plans.py, docs/PERFORMANCE.md). Likewise the daily counter's app_id index,
# covered by its unique (app_id, day, kind, shard).
# Only the index is dropped (SeparateDatabaseAndState): a plain AlterField would also drop and re-add the
# foreign-key constraint, which re-validates every row of the table under lock.
DROPPED = [
    ("groupack", "app", "receipts_groupack", "app_id", "receipts_groupack_app_id_d9b8354c"),
    ("groupack", "message", "receipts_groupack", "message_id", "receipts_groupack_message_id_8dfae810"),
    ("receiptdailycount", "app", "receipts_receiptdailycount", "app_id", "receipts_receiptdailycount_app_id_0e3e9517"),
]
FIELDS = {
    ("groupack", "app"): models.ForeignKey(
        db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="tenancy.app"),
    ("groupack", "message"): models.ForeignKey(
        db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="group_acks", to="chat.message"),
    ("receiptdailycount", "app"): models.ForeignKey(
        db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="tenancy.app"),
}


class Migration(migrations.Migration):

    dependencies = [
        ("receipts", "0004_read_receipt_privacy"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(model_name=model, name=field, field=FIELDS[model, field])
                for model, field, *_ in DROPPED
            ],
            database_operations=[
                migrations.RunSQL(f'DROP INDEX IF EXISTS "{index}"', f'CREATE INDEX "{index}" ON "{table}" ("{column}")')
                for _, _, table, column, index in DROPPED
            ],
        ),
    ]
