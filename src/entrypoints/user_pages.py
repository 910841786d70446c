"""The user's web pages (``/web``): register, log in, balance, redeem, generate, gallery,
Midjourney jobs with their buttons, app key rotation.

Each handler parses the form with the JSON API's request class (so a limit lives once),
calls the same service as the API, and renders.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from mjcore import midjourney as mj
from mjcore.accounts import Account
from mjcore.errors import InvalidInput
from mjcore.midjourney import MjAction
from mjcore.ports import ImageRequest
from mjcore.services import images
from mjcore.services.midjourney import ParentRef
from mjcore.tasks import Provider, Task, TaskStatus

from .http import app_services
from .image_schema import GenerateIn, LoginIn, RedeemIn, RegisterIn
from .page_text import translate
from .pages import (
    SESSION,
    PageRoute,
    Problem,
    attempt,
    end_sessions,
    form,
    language,
    new_csrf,
    page,
    render,
    safe_next,
    see,
    start_session,
)
from .ratelimit import client_address
from .schema import make_converter, structure

FORM = make_converter(lenient=True)  # form fields are text: "42" is a seed of 42
JOBS_SHOWN = 20
JOBS_READ = 100
REFRESH_S = 2


def _account(request: Request) -> Account:
    account: Account = request.state.user
    return account


def filled(given: dict[str, str], *names: str) -> dict[str, Any]:
    """The named fields a form filled in (an empty field is an absent one)."""
    return {name: given[name] for name in names if given.get(name, "") != ""}


# -- logging in -----------------------------------------------------------------------------


async def login_page(request: Request) -> Response:
    if request.method == "GET":
        notice = (
            translate(language(request), "registered")
            if "registered" in request.query_params
            else None
        )
        return render(
            request,
            "login.html",
            next=request.query_params.get("next", ""),
            username="",
            notice=notice,
        )
    fields = await form(request)
    services = app_services(request)

    async def log_in() -> Account:
        body = structure(FORM, filled(fields, "username", "password"), LoginIn, "form")
        await services.limits.login(client_address(request), body.username)
        return (await services.accounts.login(body.username, body.password)).account

    account = await attempt(request, log_in())
    if isinstance(account, Problem):
        return render(
            request,
            "login.html",
            account.status,
            next=fields.get("next", ""),
            username=fields.get("username", ""),
            error=account.message,
        )
    response = see(safe_next(fields.get("next"), "/web/"))
    new_csrf(request)  # a new session, a new token
    start_session(response, request, account)
    return response


async def register_page(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "register.html", username="")
    fields = await form(request)
    services = app_services(request)

    async def sign_up() -> Account:
        body = structure(FORM, filled(fields, "username", "password"), RegisterIn, "form")
        await services.limits.register(client_address(request), body.username)
        return await services.accounts.register(body.username, body.password)

    account = await attempt(request, sign_up())
    if isinstance(account, Problem):
        return render(
            request,
            "register.html",
            account.status,
            username=fields.get("username", ""),
            error=account.message,
        )
    return see("/web/login?registered=1")


async def logout(request: Request) -> Response:
    await form(request)
    response = see("/web/login")
    end_sessions(response, SESSION)
    return response


# -- balance, redeem, generate ------------------------------------------------------------------


async def dashboard(request: Request, status: int = 200, **context: Any) -> Response:
    services = app_services(request)
    current = await services.accounts.active(_account(request).id)  # after what was done
    profile = await services.accounts.profile(current or _account(request))
    context.setdefault("asked", {"aspect_ratio": "1:1", "output_format": "png"})
    return render(
        request,
        "dashboard.html",
        status,
        profile=profile,
        fireworks=services.providers.fireworks,
        ratios=images.ASPECT_RATIOS,
        formats=images.FORMATS,
        prompt_max=images.PROMPT.max_length,
        **context,
    )


async def home(request: Request) -> Response:
    return await dashboard(request)


async def redeem(request: Request) -> Response:
    fields = await form(request)
    account = _account(request)

    async def use_code() -> tuple[int, int]:
        body = structure(FORM, filled(fields, "code"), RedeemIn, "form")
        done = await app_services(request).accounts.redeem(account.id, body.code)
        return done.credits, done.balance

    done = await attempt(request, use_code())
    if isinstance(done, Problem):
        return await dashboard(request, done.status, error=done.message)
    notice = translate(language(request), "redeemed", credits=done[0], balance=done[1])
    return await dashboard(request, notice=notice)


async def generate(request: Request) -> Response:
    fields = await form(request)
    account = _account(request)
    asked = filled(fields, "prompt", "aspect_ratio", "output_format", "seed")

    async def make() -> images.Generated:
        body = structure(FORM, asked, GenerateIn, "form")
        wanted = ImageRequest(body.prompt, body.aspect_ratio, body.output_format, body.seed)
        return await app_services(request).images.generate(account.id, wanted)

    made = await attempt(request, make())
    shown = {"aspect_ratio": "1:1", "output_format": "png"} | asked
    if isinstance(made, Problem):
        return await dashboard(request, made.status, error=made.message, asked=shown)
    notice = translate(language(request), "generated_ok", credits=made.credits_remaining)
    return await dashboard(request, notice=notice, made=made, asked=shown)


async def gallery(request: Request) -> Response:
    found = await app_services(request).images.records(_account(request).id, 100)
    return render(request, "gallery.html", records=found)


# -- Midjourney ---------------------------------------------------------------------------------


@frozen
class Button:
    """A button under a finished job: what it posts, and its label."""

    value: str
    label: str


def buttons(lang: str) -> Any:
    """The buttons a finished job shows, as Midjourney shows them (:func:`mj.buttons`: a
    grid's U1–U4, reroll, V1–V4; an upscale's vary, zoom and pan), each posting
    ``action:argument``."""

    def of(task: Task) -> list[Button]:
        shown = []
        for button in mj.buttons(task):
            press = mj.parse_button(button.custom_id)
            if press is None:
                continue
            action = press.action
            if action in (MjAction.UPSCALE, MjAction.VARIATION):
                shown.append(Button(f"{action}:{press.index}", button.label))
            elif action is MjAction.ZOOMOUT:
                shown.append(
                    Button(f"zoomout:{press.zoomout}", translate(lang, "zoom", n=press.zoomout))
                )
            elif action is MjAction.EXPAND:
                shown.append(
                    Button(f"expand:{press.direction}", translate(lang, "pan", d=press.direction))
                )
            else:
                shown.append(Button(str(action), translate(lang, _LABELS[action])))
        return shown

    return of


_LABELS = {
    MjAction.RESET: "reroll",
    MjAction.SOLO_VARIATION: "vary",
    MjAction.SOLO_HIGH_VARIATION: "vary_strong",
    MjAction.SOLO_LOW_VARIATION: "vary_subtle",
}


async def midjourney_page(request: Request, status: int = 200, **context: Any) -> Response:
    services = app_services(request)
    # the newest of both providers (a query has no provider filter), Midjourney's shown
    found = await services.midjourney.tasks(_account(request).id, None, JOBS_READ, 0)
    jobs = [t for t in found.tasks if t.provider is Provider.MIDJOURNEY][:JOBS_SHOWN]
    running = any(not t.status.terminal for t in jobs)
    return render(
        request,
        "midjourney.html",
        status,
        jobs=jobs,
        available=services.providers.midjourney,
        buttons=buttons(language(request)),
        prompt_max=mj.PROMPT.max_length,
        refresh=REFRESH_S if running else None,
        refresh_to="/web/midjourney",  # a GET, also after a form was posted
        **context,
    )


async def midjourney_home(request: Request) -> Response:
    accepted = request.query_params.get("accepted", "")[:64]
    if not accepted:
        return await midjourney_page(request)
    notice = translate(language(request), "accepted", task_id=accepted)
    return await midjourney_page(request, notice=notice)


async def _after(request: Request, task: Task | Problem) -> Response:
    if isinstance(task, Problem):
        return await midjourney_page(request, task.status, error=task.message)
    if task.status is TaskStatus.FAILURE:  # Discord refused at once: refunded
        return await midjourney_page(request, 502, error=task.fail_reason)
    return see(f"/web/midjourney?accepted={task.task_id}")


async def imagine(request: Request) -> Response:
    fields = await form(request)
    prompt = fields.get("prompt", "")
    mj_service = app_services(request).midjourney
    return await _after(
        request, await attempt(request, mj_service.imagine(_account(request).id, prompt))
    )


async def press(request: Request) -> Response:
    fields = await form(request)
    name, _, argument = fields.get("button", "").partition(":")

    async def push() -> Task:
        try:
            action = MjAction(name)
        except ValueError:
            raise InvalidInput(f"no button {name!r}") from None
        if not action.is_button:
            raise InvalidInput(f"no button {name!r}")
        index, direction, zoomout = 1, None, None
        if action in (MjAction.UPSCALE, MjAction.VARIATION):
            index = int(argument) if argument.isdigit() else 0
            mj.INDEX.check(index)
        elif action is MjAction.EXPAND:
            mj.DIRECTION.check(argument)
            direction = argument
        elif action is MjAction.ZOOMOUT:
            zoomout = int(argument) if argument.isdigit() else 0
            mj.ZOOMOUT.check(zoomout)
        parent = ParentRef(task_id=fields.get("task_id", "")[:64])
        return await app_services(request).midjourney.press(
            _account(request).id,
            action,
            parent,
            index=index,
            direction=direction,
            zoomout=zoomout,
        )

    return await _after(request, await attempt(request, push()))


# -- app key ----------------------------------------------------------------------------------


async def key_page(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "key.html")
    await form(request)
    rotated = await app_services(request).accounts.rotate_key(_account(request))
    request.state.user = rotated.account
    response = render(request, "key.html", new_key=rotated.app_key)
    start_session(response, request, rotated.account)  # the rotation ended the older one
    return response


def user_routes() -> list[BaseRoute]:
    both = ["GET", "POST"]
    return [
        PageRoute("/web/login", page(login_page, "anyone"), both),
        PageRoute("/web/register", page(register_page, "anyone"), both),
        PageRoute("/web/logout", page(logout), ["POST"]),
        PageRoute("/web/", page(home), ["GET"]),
        PageRoute("/web/redeem", page(redeem), ["POST"]),
        PageRoute("/web/generate", page(generate), ["POST"]),
        PageRoute("/web/gallery", page(gallery), ["GET"]),
        PageRoute("/web/midjourney", page(midjourney_home), ["GET"]),
        PageRoute("/web/midjourney", page(imagine), ["POST"]),
        PageRoute("/web/midjourney/press", page(press), ["POST"]),
        PageRoute("/web/key", page(key_page), both),
    ]
