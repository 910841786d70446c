"""The image API's bodies and views (the seed's field names and messages)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import cattrs
from attrs import define

from mjcore.accounts import Account
from mjcore.services.reports import Record

from .http import make_converter


@define
class Credentials:
    username: str
    password: str


@define
class RedeemIn:
    code: str


@define
class GenerateIn:
    prompt: str
    aspect_ratio: str = "1:1"
    output_format: str = "png"
    seed: int | None = None


@define
class CodesIn:
    credits: int
    count: int = 1
    expires_in_days: int | None = None


def make_image_converter() -> cattrs.Converter:
    return make_converter()


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def user_view(account: Account, generated: int) -> dict[str, Any]:
    return {
        "username": account.user_name,
        "credits": account.credits,
        "totalGenerated": generated,
        "createdAt": epoch_ms(account.created_at),
    }


def record_view(record: Record) -> dict[str, Any]:
    task = record.task
    seed = task.result.get("seed", task.params.get("seed"))
    return {
        "username": record.user_name,
        "prompt": task.prompt,
        "imageUrl": task.image_url,
        "requestId": task.provider_ref or task.task_id,
        "createdAt": epoch_ms(task.created_at),
        "aspectRatio": task.params.get("aspect_ratio"),
        "seed": seed,
        "provider": task.provider.value,
        "taskId": task.task_id,
    }
