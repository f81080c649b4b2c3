"""Drop the outbox's own indexes on policy_id and provider_account_id: the unique (policy, notification type)
constraint and the (provider account, reference) index lead with those columns and serve every lookup, and each
index costs every outbox write. Only the indexes go: the foreign key constraint stays as it is (Django's own
AlterField would drop and re-add it, scanning the whole outbox under lock to validate it again)."""

import django.db.models.deletion
from django.db import migrations, models

# Django's names for the two indexes (the same on every database).
_INDEXES = (
    ("notifier_outbox_policy_id_93c99a5d", "policy_id"),
    ("notifier_outbox_provider_account_id_19a61a18", "provider_account_id"),
)


class Migration(migrations.Migration):
    dependencies = [
        ("notifier", "0018_operator_report_files"),
        ("openimis", "0004_product_premiums"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{name}"',
                    reverse_sql=f'CREATE INDEX IF NOT EXISTS "{name}" ON "notifier_outbox" ("{column}")',
                )
                for name, column in _INDEXES
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="outbox",
                    name="policy",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="openimis.policy",
                    ),
                ),
                migrations.AlterField(
                    model_name="outbox",
                    name="provider_account",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="notifier.provideraccount",
                    ),
                ),
            ],
        ),
    ]
