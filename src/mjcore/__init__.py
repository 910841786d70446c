"""mjcore: accounts, one credit ledger, redemption codes and generation tasks.

The core is framework-free (stdlib and attrs only). Storage and providers plug in
through the protocols in :mod:`mjcore.ports`; the use cases live in
:mod:`mjcore.services`.
"""

from .accounts import Account, check_user_name, digest_app_key, new_app_key
from .clock import Clock, system_clock
from .codes import CODE_ALPHABET, CODE_LENGTH, Redemption, RedemptionCode, normalize_code
from .errors import (
    AccountNotFound,
    AccountUnavailable,
    AuthError,
    BadCredentials,
    CodeAlreadyRedeemed,
    CodeExpired,
    CodeNotFound,
    Conflict,
    InsufficientCredits,
    InvalidAmount,
    InvalidAppKey,
    InvalidInput,
    InvalidTransition,
    InvalidUserName,
    MalformedCode,
    MjcoreError,
    NotFound,
    QueueFull,
    TaskNotFound,
    UserNameTaken,
    WeakPassword,
)
from .ledger import EntryKind, LedgerEntry, LedgerReport, Tally
from .ports import (
    AccountRepository,
    CodeRepository,
    Counts,
    LedgerRepository,
    NewAccount,
    SettingRepository,
    StatsRepository,
    Store,
    TaskQuery,
    TaskRepository,
    UnitOfWork,
)
from .pricing import Prices
from .tasks import Provider, Task, TaskStatus, new_task_id

__all__ = [
    "CODE_ALPHABET",
    "CODE_LENGTH",
    "Account",
    "AccountNotFound",
    "AccountRepository",
    "AccountUnavailable",
    "AuthError",
    "BadCredentials",
    "Clock",
    "CodeAlreadyRedeemed",
    "CodeExpired",
    "CodeNotFound",
    "CodeRepository",
    "Conflict",
    "Counts",
    "EntryKind",
    "InsufficientCredits",
    "InvalidAmount",
    "InvalidAppKey",
    "InvalidInput",
    "InvalidTransition",
    "InvalidUserName",
    "LedgerEntry",
    "LedgerReport",
    "LedgerRepository",
    "MalformedCode",
    "MjcoreError",
    "NewAccount",
    "NotFound",
    "Prices",
    "Provider",
    "QueueFull",
    "Redemption",
    "RedemptionCode",
    "SettingRepository",
    "StatsRepository",
    "Store",
    "Tally",
    "Task",
    "TaskNotFound",
    "TaskQuery",
    "TaskRepository",
    "TaskStatus",
    "UnitOfWork",
    "UserNameTaken",
    "WeakPassword",
    "check_user_name",
    "digest_app_key",
    "new_app_key",
    "new_task_id",
    "normalize_code",
    "system_clock",
]
