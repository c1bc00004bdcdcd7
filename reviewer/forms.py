"""Forms that parse what a reviewer posts. They only read input; the services decide what is allowed."""

from __future__ import annotations

from django import forms

from appeals.models import Action, Case, Outcome, Source
from appeals.outcomes import default_action, outcome_choices


class LeaseForm(forms.Form):
    lease_token = forms.UUIDField(
        widget=forms.HiddenInput,
        error_messages={
            "required": "the lease token is missing; claim the case first",
            "invalid": "the lease token is not valid; claim the case again",
        },
    )


class DecisionForm(LeaseForm):
    outcome = forms.ChoiceField(widget=forms.RadioSelect)
    action = forms.ChoiceField(
        required=False, choices=[("", "Default: remove if violating"), *Action.choices]
    )
    rule_ids = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label="Rules"
    )
    note = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Note (internal)"
    )
    # The id of the earlier final decision this one supersedes, when it contradicts it (confirmed).
    supersedes = forms.IntegerField(required=False, widget=forms.HiddenInput, min_value=1)

    def __init__(self, *args, case: Case, rule_ids: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["outcome"].choices = outcome_choices(case)
        self.fields["rule_ids"].choices = [(rule_id, rule_id) for rule_id in rule_ids]
        self.case = case
        if case.is_appeal:
            # Upholding keeps the original action and overturning reverses it: nothing to pick.
            self.fields["action"].widget = forms.HiddenInput()

    def clean(self):
        data = super().clean()
        outcome = data.get("outcome", "")
        if not self.case.is_appeal and (not data.get("action") or outcome == Outcome.NOT_VIOLATING):
            # The action follows from the outcome unless the reviewer picked one (an item that
            # does not violate gets none, whatever the select still shows).
            data["action"] = default_action(self.case, outcome)
        return data


class BlindCallForm(LeaseForm):
    outcome = forms.ChoiceField(widget=forms.RadioSelect, label="Your call")
    rule_ids = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label="Rules"
    )

    def __init__(self, *args, case: Case, rule_ids: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["outcome"].choices = outcome_choices(case)
        self.fields["rule_ids"].choices = [(rule_id, rule_id) for rule_id in rule_ids]


class ReasonForm(LeaseForm):
    """Escalate, skip and release: the lease and a reason in the reviewer's words."""

    reason = forms.CharField(
        required=False, max_length=2000, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )


class QueueFilterForm(forms.Form):
    """The queue list's filters, read from the query string. Invalid values are ignored."""

    STATUS_CHOICES = [("open", "Open"), ("decided", "Decided")]
    VERDICT_CHOICES = [
        ("", "Any verdict"),
        ("violating", "Model: violating"),
        ("not_violating", "Model: not violating"),
        ("none", "No draft yet"),
    ]
    AGREEMENT_CHOICES = [
        ("", "Any"),
        ("agree", "Reviewer agreed"),
        ("disagree", "Reviewer disagreed"),
    ]

    policy = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    source = forms.ChoiceField(required=False, choices=[("", "Any source"), *Source.choices])
    status = forms.ChoiceField(required=False, choices=STATUS_CHOICES)
    verdict = forms.ChoiceField(required=False, choices=VERDICT_CHOICES, label="Model verdict")
    agreement = forms.ChoiceField(required=False, choices=AGREEMENT_CHOICES)

    def __init__(self, *args, policies: list[tuple[int, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["policy"].choices = [("", "Any policy"), *policies]

    def filters(self) -> dict:
        if not self.is_valid():
            cleaned = {
                name: self.cleaned_data.get(name) for name in self.fields if name not in self.errors
            }
        else:
            cleaned = dict(self.cleaned_data)
        cleaned["status"] = cleaned.get("status") or "open"
        return cleaned
