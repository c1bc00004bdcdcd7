"""The audit table refuses UPDATE, DELETE and TRUNCATE, so only inserts can reach it.

The hash chain (appeals.audit.verify_chain) is what proves nothing changed; these triggers stop
the application, or a hurried operator, from changing it by mistake. A database superuser can
still disable them: that is what the chain is for.

PostgreSQL: row triggers on UPDATE and DELETE, a statement trigger on TRUNCATE. TRUNCATE is let
through only when the session sets `appeals.allow_audit_truncate = on` (the test suite sets it on
its own throwaway database, because Django's flush between transactional tests truncates every
table).

SQLite: an UPDATE trigger only. Django's flush (transactional tests, `manage.py flush`) empties
tables with DELETE and SQLite has no session setting to let it through, so DELETE is left to the
hash chain to catch.
"""

from django.db import migrations

TABLE = "appeals_auditevent"

POSTGRES_FORWARD = f"""
CREATE OR REPLACE FUNCTION appeals_audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND current_setting('appeals.allow_audit_truncate', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Audit events are only ever inserted. Check the chain with manage.py verify_audit.';
END;
$$;
CREATE TRIGGER appeals_auditevent_no_update BEFORE UPDATE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION appeals_audit_refuse_change();
CREATE TRIGGER appeals_auditevent_no_delete BEFORE DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION appeals_audit_refuse_change();
CREATE TRIGGER appeals_auditevent_no_truncate BEFORE TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION appeals_audit_refuse_change();
"""

POSTGRES_BACKWARD = f"""
DROP TRIGGER IF EXISTS appeals_auditevent_no_truncate ON {TABLE};
DROP TRIGGER IF EXISTS appeals_auditevent_no_delete ON {TABLE};
DROP TRIGGER IF EXISTS appeals_auditevent_no_update ON {TABLE};
DROP FUNCTION IF EXISTS appeals_audit_refuse_change();
"""

SQLITE_FORWARD = [
    f"""
    CREATE TRIGGER appeals_auditevent_no_update BEFORE UPDATE ON {TABLE}
    BEGIN
        SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE on {TABLE} is refused');
    END;
    """
]

SQLITE_BACKWARD = ["DROP TRIGGER IF EXISTS appeals_auditevent_no_update;"]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        statements = statements_by_vendor.get(schema_editor.connection.vendor)
        if statements is None:
            return
        if isinstance(statements, str):
            statements = [statements]
        for sql in statements:
            schema_editor.execute(sql, None)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("appeals", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(
            _run({"postgresql": POSTGRES_FORWARD, "sqlite": SQLITE_FORWARD}),
            _run({"postgresql": POSTGRES_BACKWARD, "sqlite": SQLITE_BACKWARD}),
        ),
    ]
