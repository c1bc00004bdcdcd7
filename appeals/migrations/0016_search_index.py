# Full-text search over item content on PostgreSQL (appeals/review/search.py). The expression is
# the one Django writes for SearchVector("content", config="english"), so the planner uses it.
# SQLite, the embedded default, searches by substring and needs no index.

from django.db import migrations

INDEX = "item_content_fts"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON appeals_item "
            "USING gin (to_tsvector('english'::regconfig, COALESCE(content, '')))"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):

    dependencies = [
        ('appeals', '0015_fast_tier'),
    ]

    operations = [migrations.RunPython(create, drop)]
