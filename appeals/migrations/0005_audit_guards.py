"""The audit table's append-only guards, without escape hatches, on both databases.

PostgreSQL: the trigger function no longer lets TRUNCATE through when a session sets
`appeals.allow_audit_truncate` (any role could set it). UPDATE, DELETE and TRUNCATE are refused
for every role; the runtime role is also never granted those privileges, and cannot disable or
drop the triggers because it does not own the table (appeals.dbroles, README "Security").
The triggers are (re)created too, in case a table rebuild lost them.

SQLite: migration 0003 rebuilt the table (SQLite alters a table by copying it) and so dropped
the UPDATE trigger of 0002; this restores it and adds one for DELETE. A later migration that
rebuilds appeals_auditevent on SQLite must create them again (the system check appeals.W011
says when they are missing).
"""

from django.db import migrations

TABLE = "appeals_auditevent"

POSTGRES_FORWARD = [
    """
    CREATE OR REPLACE FUNCTION appeals_audit_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the audit log is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Audit events are only ever inserted. Check the chain with manage.py verify_audit.';
    END;
    $$
    """,
    f"""
    CREATE OR REPLACE TRIGGER appeals_auditevent_no_update BEFORE UPDATE ON {TABLE}
        FOR EACH ROW EXECUTE FUNCTION appeals_audit_refuse_change()
    """,
    f"""
    CREATE OR REPLACE TRIGGER appeals_auditevent_no_delete BEFORE DELETE ON {TABLE}
        FOR EACH ROW EXECUTE FUNCTION appeals_audit_refuse_change()
    """,
    f"""
    CREATE OR REPLACE TRIGGER appeals_auditevent_no_truncate BEFORE TRUNCATE ON {TABLE}
        FOR EACH STATEMENT EXECUTE FUNCTION appeals_audit_refuse_change()
    """,
    f"ALTER TABLE {TABLE} ENABLE TRIGGER USER",
    f"REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {TABLE} FROM PUBLIC",
]

# Back to 0002's function, escape hatch included, so that unapplying leaves 0002's state.
POSTGRES_BACKWARD = [
    """
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
    $$
    """,
]

SQLITE_FORWARD = [
    f"""
    CREATE TRIGGER IF NOT EXISTS appeals_auditevent_no_update BEFORE UPDATE ON {TABLE}
    BEGIN
        SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE on {TABLE} is refused');
    END
    """,
    f"""
    CREATE TRIGGER IF NOT EXISTS appeals_auditevent_no_delete BEFORE DELETE ON {TABLE}
    BEGIN
        SELECT RAISE(ABORT, 'the audit log is append-only: DELETE on {TABLE} is refused');
    END
    """,
]

SQLITE_BACKWARD = ["DROP TRIGGER IF EXISTS appeals_auditevent_no_delete"]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for sql in statements_by_vendor.get(schema_editor.connection.vendor, ()):
            schema_editor.execute(sql, None)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("appeals", "0004_audit_event_source"),
    ]

    operations = [
        migrations.RunPython(
            _run({"postgresql": POSTGRES_FORWARD, "sqlite": SQLITE_FORWARD}),
            _run({"postgresql": POSTGRES_BACKWARD, "sqlite": SQLITE_BACKWARD}),
        ),
    ]
