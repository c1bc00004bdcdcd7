"""Audit events record their source (console, api, worker, command, admin) as a field.

Events recorded before this have a blank source, and their hash does not cover one
(appeals.audit.canonical_content leaves a blank source out), so the chain still verifies.

On SQLite, adding (or altering) a column rebuilds the table, and the rebuilt table has lost the
append-only trigger of 0002 (0003's AlterFields had already dropped it there): it is put back
after the rebuild, and again after the rebuild that undoes this migration.
On PostgreSQL the column is added in place; no row is rewritten, so no UPDATE trigger fires.
"""

from django.db import migrations, models

SQLITE_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS appeals_auditevent_no_update BEFORE UPDATE ON appeals_auditevent
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE on appeals_auditevent is refused');
END;
"""


def restore_sqlite_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(SQLITE_TRIGGER, None)


class Migration(migrations.Migration):
    dependencies = [
        ("appeals", "0003_indexes"),
    ]

    operations = [
        migrations.RunPython(migrations.RunPython.noop, restore_sqlite_trigger),
        migrations.AddField(
            model_name="auditevent",
            name="source",
            field=models.CharField(
                blank=True,
                choices=[
                    ("console", "Review console"),
                    ("api", "API token"),
                    ("worker", "Celery worker"),
                    ("command", "Management command"),
                    ("admin", "Admin site"),
                ],
                max_length=8,
            ),
        ),
        migrations.RunPython(restore_sqlite_trigger, migrations.RunPython.noop),
    ]
