"""The web pages' pieces that need no server: words, languages, charts, redirects."""

from __future__ import annotations

import re
from typing import Any

import pytest

from entrypoints.charts import HEIGHT, bars
from entrypoints.page_text import LANGUAGES, TEXT, translate
from entrypoints.pages import environment, localized, safe_next


def test_every_text_has_both_languages_and_the_same_placeholders() -> None:
    for key, (english, chinese) in TEXT.items():
        assert english and chinese, key
        assert set(re.findall(r"{(\w+)}", english)) == set(re.findall(r"{(\w+)}", chinese)), key
    assert set(LANGUAGES) == {"en", "zh"}
    assert translate("zh", "redeemed", credits=5, balance=7) == "兑换成功：5 积分，余额 7。"
    assert translate("xx", "login") == "Log in"


def test_every_text_a_template_names_exists() -> None:
    env = environment()
    assert env.loader is not None
    named: set[str] = set()
    for name in env.list_templates():
        source = env.loader.get_source(env, name)[0]
        named |= set(re.findall(r"t\('(\w+)'[,)]", source))
    named |= {f"refused_{reason}" for reason in ("login", "csrf", "large", "internal")}
    assert len(named) > 50 and named <= set(TEXT)


@pytest.mark.parametrize(
    ("text", "lang", "shown"),
    [
        ("积分不足 (not enough credits)", "en", "Not enough credits"),
        ("积分不足 (not enough credits)", "zh", "积分不足 (not enough credits)"),
        ("Task queue is full.", "en", "Task queue is full."),
        ("请求参数错误 (invalid form: prompt (a) is bad)", "en", "Invalid form: prompt (a) is bad"),
    ],
)
def test_the_apis_bilingual_messages_are_shown_in_the_pages_language(
    text: str, lang: str, shown: str
) -> None:
    assert localized(text, lang) == shown


@pytest.mark.parametrize(
    ("given", "expected"),
    [("/web/gallery", "/web/gallery"), ("//evil.example", "/web/"), ("https://x", "/web/"),
     ("/\\evil", "/web/"), ("", "/web/"), (None, "/web/")],
)  # fmt: skip
def test_a_redirect_after_a_form_stays_on_this_site(given: str | None, expected: str) -> None:
    assert safe_next(given, "/web/") == expected


def test_bars_scale_to_the_largest_value_and_label_at_most_about_seven_days() -> None:
    labels = [f"12-{d:02}" for d in range(1, 15)]
    chart = bars("t", labels, [[0] * 13 + [10], [5] * 14], ["a", "b"])
    tallest = max(chart.bars, key=lambda b: b.height)
    assert tallest.value == 10 and tallest.y == 8  # the top of the plot
    assert all(b.y + b.height == HEIGHT - 24 for b in chart.bars)  # on the axis
    assert len(chart.bars) == 28 and 7 <= len(chart.labels) <= 8
    assert [v for _, v in chart.ticks] == [0, 5, 10]
    empty = bars("t", [], [[]])
    assert empty.bars == () and [v for _, v in empty.ticks] == [0]


def test_a_chart_renders_as_escaped_svg() -> None:
    template: Any = environment().from_string(
        '{% from "chart.html" import draw %}{{ draw(chart, "c") }}'
    )
    html = template.render(chart=bars("<b>x</b>", ["<i>"], [[1]], ["<s>"]))
    assert "<svg" in html and "<b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
