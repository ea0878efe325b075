"""Salesforce's error codes, as billsync classifies them (registered with the framework's
one classifier through plugin.py once the registry exists; used here for record results).

- Rate limit: Salesforce has no 429. 403 `REQUEST_LIMIT_EXCEEDED` is either the daily
  allocation ("TotalRequests Limit exceeded") or the concurrent allowance
  ("ConcurrentPerOrgLongTxn Limit exceeded").
- Authentication: 401 `INVALID_SESSION_ID` (after the one re-login the client does).
- A record refused for a passing reason (a lock held by another transaction) is retried;
  every other record error (validation, a missing field, a bad reference) is the bill's."""

from __future__ import annotations

RATE_LIMIT_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED"})
AUTH_CODES = frozenset({"INVALID_SESSION_ID", "INVALID_AUTH_HEADER"})
RECORD_RETRIABLE_CODES = frozenset(
    {"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "QUERY_TIMEOUT"}
)
# The bill record is under an approval lock (its master-detail lines with it): an admin
# has taken it over, and billsync never changes it silently.
LOCKED_CODES = frozenset({"ENTITY_IS_LOCKED"})
# How long to wait when Salesforce refuses for its limits (it sends no Retry-After).
DAILY_LIMIT_RETRY_SECONDS = 900.0
CONCURRENT_LIMIT_RETRY_SECONDS = 2.0
