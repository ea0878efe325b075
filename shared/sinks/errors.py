"""The error taxonomy every destination speaks (after stripe-python and the Singer SDK).

Retriable: try again later (429, 5xx, timeouts, dropped connections).
Fatal for the bill: the provider refused the request as invalid; retrying cannot help.
Authentication: the credential is wrong or revoked; the operator must act."""

from __future__ import annotations

from shared.contracts import EventType, RunStatus


class SinkError(Exception):
    """Base class. `message` is what an operator reads in the run and the event."""

    run_status: RunStatus = RunStatus.ERROR
    event_type: EventType | None = EventType.PERFORM_ERROR

    def __init__(
        self, message: str, *, status_code: int | None = None, provider_code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.provider_code = provider_code


class RetriableError(SinkError):
    """Worth retrying after a delay; `retry_after` (seconds) is the provider's hint."""

    run_status = RunStatus.AWAITING_RETRY

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status_code: int | None = None,
        provider_code: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, provider_code=provider_code)
        self.retry_after = retry_after


class RateLimitedError(RetriableError):
    run_status = RunStatus.RATE_LIMIT_RETRY


class ProviderTimeoutError(RetriableError):
    """No answer in time. If it was a write, the provider may have committed it: the next
    attempt must look the invoice up before writing again."""


class FatalBillError(SinkError):
    """The provider (or our pre-flight check of its rules) refused this bill."""

    event_type = EventType.VALIDATION_ERROR


class MissingAccountMappingError(FatalBillError):
    event_type = EventType.MISSING_ACCOUNT_MAPPING


class AuthenticationError(SinkError):
    run_status = RunStatus.AUTH_FAILED
    event_type = EventType.AUTHENTICATION_ERROR


class InvoiceLockedError(SinkError):
    """The destination invoice is finalized or paid: billsync never silently changes it."""

    run_status = RunStatus.INVOICE_ALREADY_PAID
    event_type = None


class InternalError(SinkError):
    """A bug in billsync (an exception nothing classified). Its own event, which the
    monitor does not count: our bug must not disable a customer's configuration. The
    message names a reference to find the traceback in the sink's log, never a repr."""

    event_type = EventType.INTERNAL_ERROR
