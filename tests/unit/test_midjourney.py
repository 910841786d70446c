"""Midjourney's wording, read by the core: triggers, progress, hashes, routing, bans."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from attrs import evolve

from mjcore.errors import BannedPrompt
from mjcore.midjourney import (
    BUTTON_IDS,
    Attachment,
    Embed,
    EventType,
    ListenerEvent,
    MjAction,
    buttons,
    costly_parameters,
    describe_prompts,
    discord_prompt,
    hash_of,
    image_index,
    new_trigger_id,
    parse_button,
    progress_of,
    route,
)
from mjcore.moderation import _matcher, check_prompt, default_banned_words, find_banned
from mjcore.tasks import Provider, Task, TaskStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_trigger_ids_are_sixteen_digits_and_distinct() -> None:
    ids = {new_trigger_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 16 and i.isdigit() and i[0] != "0" for i in ids)


@pytest.mark.parametrize(
    ("prompt", "picurl", "expected"),
    [
        ("a cat", None, "<#42#>a cat"),
        ("a cat", "https://x/y.png", "https://x/y.png <#42#>a cat"),
        ("https://x/y.png a cat", None, "https://x/y.png <#42#>a cat"),
    ],
)
def test_the_trigger_goes_after_the_image_url(
    prompt: str, picurl: str | None, expected: str
) -> None:
    assert discord_prompt(prompt, picurl, "42") == expected


def test_progress_index_and_hash_are_read_from_midjourneys_text() -> None:
    assert progress_of("**<#1#>x** - <@2> (31%) (fast)") == 31
    assert progress_of("**<#1#>x** - <@2> (Waiting to start)") is None
    assert image_index("**<#1#>a cat** - Image #3 <@2>") == 3
    assert image_index("Upscaling image #2 with **<#1#>a cat**") == 2
    name = "gaosh_7744309837string_600f88ff-2147-40ad-83e4-50992c96aadb.png"
    assert hash_of(name) == "600f88ff-2147-40ad-83e4-50992c96aadb"
    assert hash_of("grid_0.webp") is None


def test_describe_answers_become_a_list_of_prompts() -> None:
    text = "1️⃣ a fox --ar 3:2\n\n2️⃣ two foxes\n\n3️⃣ a fox, watercolor\n\n4️⃣ fox"
    assert describe_prompts([text]) == ["a fox --ar 3:2", "two foxes", "a fox, watercolor", "fox"]


def test_the_trigger_comes_from_the_event_the_content_or_the_describe_image() -> None:
    sent = ListenerEvent(EventType.END, "1", "**<#555#>x**", "777")
    in_text = ListenerEvent(EventType.END, "1", "**<#555#>x**", None)
    image = ListenerEvent(
        EventType.TEXT,
        "1",
        "",
        None,
        embeds=(Embed(image_url="https://cdn/x/9231228408.png?ex=1"),),
    )
    assert (sent.trigger, in_text.trigger, image.trigger) == ("777", "555", "9231228408")


def _task(action: MjAction, minutes: int, **params: object) -> Task:
    return Task(
        task_id=f"{action}-{minutes}",
        account_id=1,
        provider=Provider.MIDJOURNEY,
        action=action,
        prompt="p",
        cost=1,
        created_at=T0 + timedelta(minutes=minutes),
        status=TaskStatus.SUBMITTED,
        params=params,
    )


def _event(content: str, message_id: str = "m") -> ListenerEvent:
    return ListenerEvent(EventType.END, message_id, content, "1", (Attachment("u", "f"),))


def test_routing_tells_upscales_of_one_grid_apart_by_image_number() -> None:
    u1 = _task(MjAction.UPSCALE, 1, index=1)
    u2 = _task(MjAction.UPSCALE, 2, index=2)
    assert route([u1, u2], _event("**<#1#>p** - Image #2 <@9>")) is u2
    assert route([u1, u2], _event("**<#1#>p** - Image #1 <@9>")) is u1
    assert route([u1], _event("**<#1#>p** - Image #4 <@9>")) is None


def test_routing_by_action_wording() -> None:
    grid = _task(MjAction.IMAGINE, 0)
    vary = _task(MjAction.SOLO_HIGH_VARIATION, 1)
    zoom = _task(MjAction.ZOOMOUT, 2)
    pan = _task(MjAction.EXPAND, 3, direction="left")
    tasks = [pan, zoom, vary, grid]
    assert route(tasks, _event("**<#1#>p** - Variations (Strong) by <@9> (fast)")) is vary
    assert route(tasks, _event("**<#1#>p** - Zoom Out by <@9> (fast)")) is zoom
    assert route(tasks, _event("**<#1#>p** - Pan Left by <@9> (fast)")) is pan
    assert route(tasks, _event("**<#1#>p** - <@9> (fast)")) is grid


def test_routing_prefers_the_task_that_owns_the_progress_message() -> None:
    first = _task(MjAction.IMAGINE, 0)
    second = evolve(first, task_id="b", result={"progress_msg_id": "m7"})
    assert route([first, second], _event("(50%)", message_id="m7")) is second


def test_banned_words_match_whole_words_and_phrases_in_any_case() -> None:
    banned = ("gore", "big nose")
    assert find_banned("so much GORE here", banned) == "gore"
    assert find_banned("a Big\tNose, clown", banned) == "big nose"
    assert find_banned("gorgeous big noses", banned) is None
    with pytest.raises(BannedPrompt):
        check_prompt("gore", banned)


def test_the_shipped_list_bans_by_default_and_spares_ordinary_prompts() -> None:
    shipped = default_banned_words()
    assert len(shipped) > 150 and all(w == w.lower() for w in shipped)
    assert find_banned("a NUDE statue", shipped) == "nude"
    assert find_banned("an open-backed dress", shipped) == "-backed"
    assert find_banned("a see-through veil", shipped) == "see through"
    for fine in ("Peter Pan flying over London", "a bloodhound", "a backed chair"):
        assert find_banned(fine, shipped) is None, fine


def test_the_word_prefilter_never_lets_a_banned_phrase_through() -> None:
    """The quick look at a prompt's words says "no" only where the regex would too."""
    shipped = default_banned_words()
    regex = _matcher(shipped)
    assert regex is not None
    rng = random.Random(11)
    filler = ["a", "fox", "open", "see", "-", ",", "Through", "BIG", "dress", "ok.", "\t"]
    prompts = [f"an {phrase.upper()}!" for phrase in shipped]
    prompts += [f"x{phrase}y and {phrase.replace(' ', '-')}" for phrase in shipped]
    prompts += [" ".join(rng.choices(filler + list(shipped), k=6)) for _ in range(2000)]
    prompts += ["OVARİES", "\u212aKK"]  # "İ".lower() is two letters: the regex decides
    for prompt in prompts:
        found = regex.regex.search(prompt)
        expected = (
            None if found is None or found.lastgroup is None else regex.groups[found.lastgroup]
        )
        assert find_banned(prompt, shipped) == expected, prompt
    assert find_banned("OVARİES", shipped) == "ovaries"
    assert find_banned("an open-backed dress", list(shipped)) == "-backed"  # any iterable


@pytest.mark.parametrize(
    ("prompt", "costly"),
    [
        ("a fox --repeat 40", {"repeat"}),
        ("a fox --r 4 --ar 16:9", {"repeat"}),
        ("a fox --turbo", {"turbo"}),
        ("a fox \u2014turbo", {"turbo"}),  # iOS turns -- into an em dash; Midjourney accepts it
        ("a fox --relax --raw --v 6", set()),
        ("repeat the turbo pattern", set()),
    ],
)
def test_parameters_that_multiply_the_cost_are_found(prompt: str, costly: set[str]) -> None:
    assert costly_parameters(prompt) == costly


def _finished(action: MjAction, msg_hash: str = "600f88ff-2147-40ad-83e4-50992c96aadb") -> Task:
    task = Task("t1", 1, Provider.MIDJOURNEY, action.value, "a cat", 1, T0)
    return evolve(task, status=TaskStatus.SUCCESS, msg_id="1", msg_hash=msg_hash)


@pytest.mark.parametrize("action", [MjAction.IMAGINE, MjAction.UPSCALE, MjAction.ZOOMOUT])
def test_every_button_shown_parses_back_to_the_action_that_presses_it(action: MjAction) -> None:
    task = _finished(action)
    shown = buttons(task)
    assert shown
    for button in shown:
        press = parse_button(button.custom_id)
        assert press is not None and press.msg_hash == task.msg_hash
        params = {"index": press.index, "hash": press.msg_hash}
        params |= {"direction": press.direction, "zoomout": press.zoomout}
        assert BUTTON_IDS[press.action].format(**params) == button.custom_id


def test_a_grid_shows_u_reroll_v_and_an_upscale_shows_vary_zoom_pan() -> None:
    grid = [b.label or b.emoji for b in buttons(_finished(MjAction.IMAGINE))]
    assert grid == ["U1", "U2", "U3", "U4", "\U0001f504", "V1", "V2", "V3", "V4"]
    image = [parse_button(b.custom_id) for b in buttons(_finished(MjAction.UPSCALE))]
    assert [p.action for p in image if p is not None] == [
        MjAction.SOLO_HIGH_VARIATION,
        MjAction.SOLO_LOW_VARIATION,
        MjAction.ZOOMOUT,
        MjAction.ZOOMOUT,
        *[MjAction.EXPAND] * 4,
    ]
    assert buttons(evolve(_finished(MjAction.IMAGINE), msg_hash=None)) == []
    assert buttons(_finished(MjAction.DESCRIBE)) == []


@pytest.mark.parametrize(
    "custom_id",
    [
        "",
        "MJ::JOB::upsample::5::600f88ff-2147-40ad-83e4-50992c96aadb",
        "MJ::JOB::upsample::x::600f88ff-2147-40ad-83e4-50992c96aadb",
        "MJ::JOB::upsample::1::not a hash",
        "MJ::Outpaint::60::1::600f88ff-2147-40ad-83e4-50992c96aadb::SOLO",
        "MJ::JOB::pan_sideways::1::600f88ff-2147-40ad-83e4-50992c96aadb::SOLO",
        "MJ::CustomZoom::600f88ff-2147-40ad-83e4-50992c96aadb",
        "MJ::Inpaint::1::600f88ff-2147-40ad-83e4-50992c96aadb::SOLO",
    ],
)
def test_buttons_we_cannot_press_parse_to_none(custom_id: str) -> None:
    assert parse_button(custom_id) is None
