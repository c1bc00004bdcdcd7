"""Appeals without loopholes (issue 11.3): the appeal's link, its mismatch, decision chains.

Existing open appeals that never got their link (they arrived before the flag was decided) are
linked to the item's flag decision, and every linked appeal gets its mismatch worked out. Two open
appeals on one item cannot be migrated silently: the migration stops and names them.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def link_existing_appeals(apps, schema_editor):
    from appeals.appeal_rules import original_mismatch

    Case = apps.get_model("appeals", "Case")
    Decision = apps.get_model("appeals", "Decision")
    open_appeals = Case.objects.filter(kind="appeal", status="open")
    duplicates = (
        open_appeals.values("item_id")
        .annotate(n=models.Count("id"))
        .filter(n__gt=1)
        .values_list("item_id", flat=True)
    )
    if duplicates:
        names = [
            f"item {item_id}: cases "
            + ", ".join(str(i) for i in open_appeals.filter(item_id=item_id).values_list("id", flat=True))
            for item_id in duplicates[:20]
        ]
        raise RuntimeError(
            "At most one appeal per decision may be open, but these items have several: "
            + "; ".join(names)
            + ". Decide all but one of each (on the previous release), then migrate again."
        )
    for appeal in Case.objects.filter(kind="appeal").order_by("id"):
        decision = appeal.appealed_decision
        if decision is None and appeal.status == "open":
            decision = (
                Decision.objects.filter(case__item_id=appeal.item_id, case__kind="flag")
                .order_by("-decided_at", "-id")
                .first()
            )
        if decision is None:
            continue
        appeal.appealed_decision = decision
        appeal.original_mismatch = original_mismatch(appeal, decision)
        appeal.save(update_fields=["appealed_decision", "original_mismatch"])


class Migration(migrations.Migration):

    dependencies = [
        ('appeals', '0011_three_level_agreement'),
        ('policies', '0003_reasoning_effort_engine_default'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='case',
            name='original_mismatch',
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name='decision',
            name='supersedes',
            field=models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='superseded_by', to='appeals.decision'),
        ),
        migrations.RunPython(link_existing_appeals, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='case',
            constraint=models.UniqueConstraint(condition=models.Q(('kind', 'appeal'), ('status', 'open')), fields=('item',), name='case_one_open_appeal_per_item'),
        ),
        migrations.AddConstraint(
            model_name='case',
            constraint=models.UniqueConstraint(condition=models.Q(('kind', 'appeal'), ('status', 'open')), fields=('appealed_decision',), name='case_one_open_appeal_per_decision'),
        ),
    ]
