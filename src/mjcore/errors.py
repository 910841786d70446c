"""Domain errors. Every failure a caller can act on is its own type."""

from __future__ import annotations


class MjcoreError(Exception):
    """Base class of every domain error raised by the core."""


class InvalidInput(MjcoreError):
    """A value given to a use case breaks a domain rule (name, amount, code shape...)."""


class InvalidUserName(InvalidInput):
    """User names are 1–64 characters of ``A-Za-z0-9_.-``."""


class WeakPassword(InvalidInput):
    """Passwords are at least 8 characters."""


class InvalidAmount(InvalidInput):
    """A credit amount or count is out of its allowed range."""


class MalformedCode(InvalidInput):
    """The text cannot be a redemption code (wrong length or alphabet)."""


class NotFound(MjcoreError):
    """The thing asked for does not exist (or is not the caller's)."""


class AccountNotFound(NotFound):
    """No account by that name or id."""


class TaskNotFound(NotFound):
    """No task by that id for this caller."""


class CodeNotFound(NotFound):
    """No redemption code by that text."""


class Conflict(MjcoreError):
    """The change contradicts the current state."""


class UserNameTaken(Conflict):
    """Another account already has this user name."""


class CodeAlreadyRedeemed(Conflict):
    """Redemption codes are single use."""


class CodeExpired(Conflict):
    """The code's expiry has passed."""


class InvalidTransition(Conflict):
    """A task status may only move forward, and never out of SUCCESS or FAILURE."""


class QueueFull(Conflict):
    """The provider's waiting queue is at capacity; nothing was charged."""


class AuthError(MjcoreError):
    """The caller could not be authenticated."""


class InvalidAppKey(AuthError):
    """No account holds this app key."""


class AccountUnavailable(AuthError):
    """The account behind a valid credential is disabled or deleted."""


class BadCredentials(AuthError):
    """Wrong user name or password (one error for both, by design)."""


class ProviderNotConfigured(MjcoreError):
    """This server has no credentials for the provider: the job is refused before
    anything is charged or recorded."""


class InsufficientCredits(MjcoreError):
    """The balance is below the action's cost; nothing was charged."""

    def __init__(self, balance: int, cost: int) -> None:
        super().__init__(f"balance {balance} is below the cost {cost}")
        self.balance = balance
        self.cost = cost


class BannedPrompt(InvalidInput):
    """The prompt contains a word or phrase on the configured banned list."""

    def __init__(self, phrase: str) -> None:
        super().__init__(f"banned prompt: the prompt contains {phrase!r}")
        self.phrase = phrase


class ProviderError(MjcoreError):
    """An image provider did not do the job; whatever it cost was refunded."""


class ProviderRejected(ProviderError):
    """The provider answered with an error status."""


class ProviderUnavailable(ProviderError):
    """The provider could not be reached (network error after retries) or is not configured."""


class SubmissionUncertain(ProviderError):
    """The request may have reached the provider, which did not answer: it is not sent
    again (that could run the job twice). The job is left to finish, or to time out."""


class ProviderTimeout(ProviderError):
    """The provider did not answer within the configured time."""


class ContentFiltered(ProviderError):
    """The provider refused the prompt or filtered its result."""
