"""Cron maths: validation, fire times in a schedule's time zone (stored in UTC), descriptions.

cronsim implements Debian cron's rules at daylight-saving changes: a job with a fixed minute and
hour runs once at the first valid minute after a skipped hour and once in a repeated hour, while a
job whose minute or hour starts with `*` follows wall-clock time. We accept exactly the classic
five fields (numbers, `*`, ranges, steps, lists, month and weekday names); cronsim's extensions
(`L`, `LW`, `#`, seconds) and nicknames such as `@daily` or `@every` are refused so an expression
means the same thing here as in any crontab.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from cronsim import CronSim, CronSimError

from common.errors import ApplicationError

FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
_MONTHS = "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC"
_DAYS = "SUN|MON|TUE|WED|THU|FRI|SAT"
_NUMBER = r"\d{1,2}"
MAX_EXPRESSION_CHARS = 200


def _field_pattern(value: str) -> re.Pattern[str]:
    item = rf"(?:\*|{value}(?:-{value})?)(?:/\d{{1,2}})?"
    return re.compile(rf"^{item}(?:,{item})*$", re.IGNORECASE)


_FIELD_PATTERNS = (
    _field_pattern(_NUMBER),
    _field_pattern(_NUMBER),
    _field_pattern(_NUMBER),
    _field_pattern(f"(?:{_NUMBER}|{_MONTHS})"),
    _field_pattern(f"(?:{_NUMBER}|{_DAYS})"),
)


class InvalidExpression(ApplicationError):
    code = "invalid_expression"
    message = "The cron expression is not valid."

    def __init__(self, reason: str) -> None:
        super().__init__(f"expression: {reason}", details={"expression": [reason]})


class InvalidTimezone(ApplicationError):
    code = "invalid_timezone"
    message = "The time zone is not valid."

    def __init__(self, reason: str) -> None:
        super().__init__(f"timezone: {reason}", details={"timezone": [reason]})


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    # System zone folders can add entries that are not zones of the IANA database.
    return frozenset(available_timezones()) - {"localtime", "posixrules", "Factory"}


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The ZoneInfo of an IANA name, or InvalidTimezone (no file paths, no `localtime`)."""
    if not isinstance(name, str) or name not in _zone_names():
        raise InvalidTimezone("Must be an IANA time zone such as UTC or Europe/Paris.")
    return ZoneInfo(name)


def normalize_expression(expression: str) -> str:
    """The expression with single spaces, after checking its shape (5 classic fields)."""
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidExpression("Must be a cron expression of 5 fields.")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise InvalidExpression(f"Must be at most {MAX_EXPRESSION_CHARS} characters.")
    fields = expression.split()
    if expression.strip().startswith("@"):
        raise InvalidExpression("Nicknames such as @daily or @every are not supported; use 5 fields.")
    if len(fields) != 5:
        raise InvalidExpression(
            f"Must have exactly 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}."
        )
    for name, field, pattern in zip(FIELD_NAMES, fields, _FIELD_PATTERNS, strict=True):
        if not pattern.match(field):
            raise InvalidExpression(f"The {name} field {field!r} is not valid.")
    return " ".join(fields)


@lru_cache(maxsize=4096)
def _checked(expression: str) -> str:
    """Validate once per distinct expression: shape, value ranges, and that it ever fires."""
    normalized = normalize_expression(expression)
    probe = datetime(2000, 1, 1, tzinfo=UTC)
    try:
        CronSim(normalized, probe)
    except CronSimError as exc:
        fields = normalized.split()
        for index, name in enumerate(FIELD_NAMES):
            single = ["*"] * 5
            single[index] = fields[index]
            try:
                CronSim(" ".join(single), probe)
            except CronSimError:
                raise InvalidExpression(f"The {name} field {fields[index]!r} is out of range.") from None
        # Every field is fine on its own: the combination names no real date (30 February).
        raise InvalidExpression(f"The expression never fires ({exc}).") from None
    try:
        next(CronSim(normalized, probe))
    except StopIteration:
        raise InvalidExpression("The expression never fires.") from None
    return normalized


def validate_expression(expression: str) -> str:
    """The normalized expression, or InvalidExpression (400 `invalid_expression`)."""
    if not isinstance(expression, str):
        raise InvalidExpression("Must be a string.")
    return _checked(expression)


def next_fire(expression: str, timezone_name: str, after: datetime) -> datetime | None:
    """The first fire time strictly after `after`, in UTC (None if it never fires again)."""
    tz = zone(timezone_name)
    try:
        return next(CronSim(expression, after.astimezone(tz))).astimezone(UTC)
    except (StopIteration, OverflowError):  # OverflowError: past the end of the calendar (year 9999)
        return None


def fire_times(expression: str, timezone_name: str, after: datetime, count: int) -> list[datetime]:
    """The next `count` fire times strictly after `after`, in UTC (fewer if the series ends).

    Python dates end with the year 9999; cronsim overflows when its search reaches that end, so
    the series simply stops there instead of failing the request.
    """
    tz = zone(timezone_name)
    result: list[datetime] = []
    try:
        iterator = CronSim(expression, after.astimezone(tz))
        for _ in range(count):
            result.append(next(iterator).astimezone(UTC))
    except (StopIteration, OverflowError):
        pass
    return result


def latest_fire(expression: str, timezone_name: str, at_or_before: datetime) -> datetime | None:
    """The last fire time at or before `at_or_before`, in UTC (for catching up after downtime)."""
    # Add the second in UTC: wall-clock arithmetic on a local time drops `fold`, which would move
    # a moment in the second copy of a repeated hour back into the first one.
    start = (at_or_before.replace(microsecond=0) + timedelta(seconds=1)).astimezone(zone(timezone_name))
    try:
        return next(CronSim(expression, start, reverse=True)).astimezone(UTC)
    except StopIteration:
        return None


@lru_cache(maxsize=4096)
def describe(expression: str) -> str:
    """Readable text for an expression, e.g. "At 09:00 on Monday through Friday"."""
    try:
        return CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC)).explain()
    except Exception:  # noqa: BLE001 - a description must never break a response
        return expression
