"""The alert card as a real browser (Chromium, through Playwright) renders it: the runner-up, the margin
and the hold, buttons by role, and the perceived groups an officer records on it."""

from __future__ import annotations

import asyncio

import pytest

from lfr_testing.console import CHROMIUM_ARGS, chromium_path
from lfr_testing.deployments import OFFICER_TOKEN, SUPERVISOR_TOKEN

pytestmark = pytest.mark.integration


def _cards(url: str, logins: list[tuple[str, str]]) -> list[dict]:
    """Each user's first alert card as the page renders it (Playwright's sync API: in a thread of its own)."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    seen = []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            for token, officer in logins:
                page = chromium.new_context().new_page()
                page.goto(url)
                page.fill("#officer", officer)
                page.fill("#token", token)
                page.click("#sign-in button[type=submit]")
                card = page.locator("li.alert").first
                card.wait_for(timeout=30_000)
                seen.append(
                    {
                        "runner_up": card.locator(".runner-up").inner_text(),
                        "hold": card.locator(".hold").inner_text() if card.locator(".hold").is_visible() else None,
                        "state": card.locator(".state").inner_text(),
                        "adjudicate": card.locator(".step.adjudication").is_visible(),
                        "markup": card.locator(".facts b").count(),
                    }
                )
        finally:
            chromium.close()
    return seen


@pytest.mark.browser
async def test_the_alert_card_shows_the_runner_up_the_margin_and_the_hold_without_buttons_for_an_officer(
    lookalike_alert, stack
):
    """The card, rendered in a real browser: the runner-up and the margin as text (its markup escaped),
    the hold and its reason, and the adjudication buttons for a supervisor only."""
    _, _, console = stack
    await lookalike_alert()
    officer, supervisor = await asyncio.to_thread(
        _cards, f"http://127.0.0.1:{console.web.port}/", [(OFFICER_TOKEN, "PC 1234"), (SUPERVISOR_TOKEN, "Sgt 9")]
    )
    for card in (officer, supervisor):
        assert card["runner_up"] == "runner-up S-2 <b>brother</b> 0.710 \u00b7 margin 0.020"
        assert card["hold"].startswith("Held for a supervisor: runner-up S-2 <b>brother</b> scores 0.710")
        assert card["state"] == "waiting for a supervisor's decision" and card["markup"] == 0
    assert (officer["adjudicate"], supervisor["adjudicate"]) == (False, True)


def _choose_and_decide(url: str) -> str:
    """An officer chooses a perceived ethnicity on the first card and clicks False; the card's state text."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = chromium.new_context().new_page()
            page.goto(url)
            page.fill("#officer", "PC 1234")
            page.fill("#token", OFFICER_TOKEN)
            page.click("#sign-in button[type=submit]")
            card = page.locator("li.alert").first
            card.wait_for(timeout=30_000)
            card.locator(".perceived-ethnicity").select_option("IC4")
            card.locator("button[data-outcome=false]").click()
            state = page.locator("li.alert .state").first
            state.filter(has_text="perceived").wait_for(timeout=30_000)
            return state.inner_text()
        finally:
            chromium.close()


@pytest.mark.browser
async def test_an_officer_records_a_perceived_group_on_the_card(raise_alert, stack):
    _, _, console = stack
    await raise_alert()
    text = await asyncio.to_thread(_choose_and_decide, f"http://127.0.0.1:{console.web.port}/")
    assert text == "adjudicated false (PC 1234; perceived IC4)"
