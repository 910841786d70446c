"""What a client may attach to any job: where to call back, and an Idempotency-Key."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from attrs import define, frozen

from ..errors import InvalidInput
from ..limits import Text
from ..ports import TargetGuard
from ..webhooks import HOOK_URL, Hook, with_hooks
from .idempotency import Claim, Guard, Keys

STATE = Text("state", 2048)


@frozen
class JobOptions:
    hooks: tuple[Hook, ...] = ()
    claim: Claim | None = None  # the request's Idempotency-Key, if it sent one
    state: str | None = None  # the client's own note, shown with the task (novicezk's state)


NO_OPTIONS = JobOptions()


@define
class Extras:
    """Turns a job's options into what its admission needs: hooks checked and kept in its
    params (with the operator's callback URL), the key's claim as an admission guard."""

    keys: Keys | None = None
    targets: TargetGuard | None = None  # None: clients may not ask for callbacks
    operator_url: str | None = None  # MJCORE_CALLBACK_URL: every task's events

    async def params(self, params: Mapping[str, Any], options: JobOptions) -> dict[str, Any]:
        """``params`` with the job's hooks; :class:`InvalidInput` for a hook not allowed."""
        for hook in options.hooks:
            HOOK_URL.check(hook.url)
            if self.targets is None:
                raise InvalidInput("this server does not call back")
            await self.targets.check(hook.url)
        operator = (Hook(self.operator_url),) if self.operator_url else ()
        if options.state is not None:
            params = dict(params) | {"state": STATE.check(options.state)}
        return with_hooks(params, (*options.hooks, *operator))

    def guard(self, options: JobOptions, task_id: str | None = None) -> Guard | None:
        if options.claim is None:
            return None
        if self.keys is None:
            raise InvalidInput("this server does not keep Idempotency-Keys")
        return self.keys.guard(options.claim, task_id)


def hooks_from(urls: Sequence[str | None], style: Any) -> tuple[Hook, ...]:
    """The hooks a request names (empty strings and None are no hook)."""
    return tuple(Hook(url, style) for url in urls if url)
