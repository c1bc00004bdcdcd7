"""A revoked API token stays revoked: the database refuses clearing or moving `revoked_at`.

appeals.intake.tokens.revoke_api_token sets it once (and writes a `token_revoked` audit event); the
admin shows it read-only and ApiToken.save() refuses the change; these triggers refuse it for
every other path too (queryset.update(), raw SQL from the application's connection).

SQLite drops a table's triggers when a migration rebuilds the table (AlterField and friends):
a later migration that rebuilds appeals_apitoken on SQLite must create this trigger again.
"""

from django.db import migrations, models

TABLE = "appeals_apitoken"

POSTGRES_FORWARD = f"""
CREATE OR REPLACE FUNCTION appeals_apitoken_keep_revoked() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS DISTINCT FROM OLD.revoked_at THEN
        RAISE EXCEPTION 'API token % was revoked at % and stays revoked', OLD.prefix, OLD.revoked_at
            USING ERRCODE = 'integrity_constraint_violation',
                  HINT = 'Issue a new token with manage.py create_api_token.';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER appeals_apitoken_keep_revoked BEFORE UPDATE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION appeals_apitoken_keep_revoked();
"""

POSTGRES_BACKWARD = f"""
DROP TRIGGER IF EXISTS appeals_apitoken_keep_revoked ON {TABLE};
DROP FUNCTION IF EXISTS appeals_apitoken_keep_revoked();
"""

SQLITE_FORWARD = f"""
CREATE TRIGGER appeals_apitoken_keep_revoked BEFORE UPDATE OF revoked_at ON {TABLE}
WHEN OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS NOT OLD.revoked_at
BEGIN
    SELECT RAISE(ABORT, 'a revoked API token stays revoked: clearing revoked_at is refused');
END;
"""

SQLITE_BACKWARD = "DROP TRIGGER IF EXISTS appeals_apitoken_keep_revoked;"


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        sql = statements_by_vendor.get(schema_editor.connection.vendor)
        if sql is not None:
            schema_editor.execute(sql, None)

    return run



class Migration(migrations.Migration):

    dependencies = [
        ('appeals', '0005_audit_guards'),
    ]

    operations = [
        migrations.AlterField(
            model_name='auditevent',
            name='kind',
            field=models.CharField(choices=[('received', 'Received'), ('draft_requested', 'Draft requested'), ('draft_started', 'Draft started'), ('drafted', 'Drafted'), ('draft_failed', 'Draft failed'), ('draft_recovered', 'Stalled draft recovered'), ('claimed', 'Claimed'), ('lease_renewed', 'Lease renewed'), ('lease_expired', 'Lease expired'), ('released', 'Released'), ('skipped', 'Skipped'), ('blind_call', 'Blind call recorded'), ('decided', 'Decided'), ('escalated', 'Escalated'), ('appealed', 'Appealed'), ('exported', 'Exported'), ('callback_attempted', 'Callback attempted'), ('callback_delivered', 'Callback delivered'), ('callback_failed', 'Callback failed'), ('token_revoked', 'API token revoked')], max_length=24),
        ),
        migrations.RunPython(
            _run({"postgresql": POSTGRES_FORWARD, "sqlite": SQLITE_FORWARD}),
            _run({"postgresql": POSTGRES_BACKWARD, "sqlite": SQLITE_BACKWARD}),
        ),
    ]
