"""Second opinions in a real browser: the panel beside the draft, its rule chips opening the
rule, a waiting panel that fills itself in when the opinion lands, all under the Content
Security Policy.

With SCREENSHOT_DIR set, the case page is saved there at 1280×720 (docs/screenshots).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appeals.second_opinions import services
from policies.models import SecondOpinionSetting
from tests.builders import flag
from tests.reviewer.drafts import ready_draft
from tests.reviewer.test_browser import browser, log_in, memory_broker, site  # noqa: F401
from tests.reviewer.test_browser import page as page  # noqa: F401 - the fixture
from tests.standin_server import StandInServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CONTENT = "Buy gold rings here! You won an iPhone, click here to claim your prize"


def _setting(policy_version, server, adapter, model, mapping):
    setting = SecondOpinionSetting(
        policy_id=policy_version.policy_id,
        adapter=adapter,
        base_url=server.base_url,
        model=model,
        timeout_seconds=5,
        category_rules=mapping,
    )
    setting.full_clean()
    setting.save()
    return setting


def test_second_opinions_beside_the_draft(  # noqa: F811 - `page` is the fixture
    page, alice, platform, spam_policy, tmp_path
):
    out = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    with (
        StandInServer(mode="llama_guard") as llama,
        StandInServer(mode="shieldgemma") as gemma,
        StandInServer(mode="nemoguard") as nemo,
        StandInServer(mode="qwen3guard", answer="I am not sure about this one.") as qwen,
    ):
        settings = [
            _setting(
                spam_policy,
                llama,
                "llama_guard_3",
                "meta-llama/Llama-Guard-3-8B",
                {"S2": ["SP2.b", "SP3.a"]},
            ),
            _setting(
                spam_policy,
                gemma,
                "shieldgemma",
                "google/shieldgemma-9b",
                {"Dangerous Content": ["SP3.a"], "Harassment": []},
            ),
            _setting(
                spam_policy,
                nemo,
                "nemoguard",
                "llama-3.1-nemoguard-8b-content-safety",
                {"Fraud/Deception": ["SP3.a"]},
            ),
            _setting(spam_policy, qwen, "qwen3guard", "Qwen/Qwen3Guard-Gen-8B", {}),
        ]
        case = flag(platform, content=CONTENT)
        ready_draft(
            case,
            rule_ids=("SP2.b", "SP3.a"),
            rationale="An advert for gold rings dressed up as a prize giveaway (SP2.b, SP3.a).",
        )
        log_in(page, "alice")
        page.goto(f"/cases/{case.id}/")
        panel = page.locator("#second-opinions")
        assert "Waiting for 4 models" in panel.inner_text()
        # The opinions land while the page is open: the panel fills itself in (htmx polling).
        services.ask_second_opinions([(case.id, s.id) for s in settings], last_try=True)
        page.locator("#second-opinions [data-verdict]").first.wait_for()
        page.locator('#second-opinions [data-failure="malformed_answer"]').wait_for()
    text = panel.inner_text()
    assert "Waiting for" not in text
    for shown in (
        "Llama Guard 3",
        "S2 Non-Violent Crimes",
        "ShieldGemma",
        "Dangerous Content",
        "NemoGuard content safety",
        "Fraud/Deception",
        "Qwen3Guard",
        "No opinion: the answer is not in the model's published format",
    ):
        assert shown in text, shown
    # The draft's verdict at the top of the view, the second opinions under it.
    page.locator("#recommendation").evaluate("el => el.scrollIntoView({block: 'start'})")
    page.screenshot(path=str(out / "case-second-opinion.png"))
    # A mapped rule opens the rule beside the case, as the draft's chips do.
    panel.locator("a.rule-chip", has_text="SP3.a").first.click()
    page.locator("#rule-panel").get_by_text("Fake giveaways").first.wait_for()
