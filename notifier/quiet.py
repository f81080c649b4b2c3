"""Quiet hours: no SMS between `quiet_hours.start` and `.end`, local time (TIME_ZONE); 20:00-08:00 by default.

`next_send_time` is a pure function of the clock, the config and a message's spread key: None when a message may
go now, else the moment it waits for — the end of the quiet hours plus the message's own offset within
`spread_minutes`, so that the messages held overnight leave over the first hour of the morning at an even pace
instead of all at 08:00 (the per-account rate limit would otherwise make most of them wait and retry).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from notifier.config import QuietHours

# Spreads consecutive outbox ids across the window (a multiplicative hash: ids 1, 2, 3 land far apart).
_GOLDEN = 2654435761


def _clock(value: str) -> dt.time:
    hours, minutes = value.split(":")
    return dt.time(int(hours), int(minutes))


def is_quiet(local: dt.datetime, quiet: QuietHours) -> bool:
    start, end, now = _clock(quiet.start), _clock(quiet.end), local.time().replace(second=0, microsecond=0)
    if start < end:  # e.g. 13:00-14:00 the same day
        return start <= now < end
    return now >= start or now < end  # overnight, e.g. 20:00-08:00


def spread_offset(spread_key: int, quiet: QuietHours) -> dt.timedelta:
    """A message's fixed offset after the end of the quiet hours, in whole seconds within the spread window."""
    window = quiet.spread_minutes * 60
    if window <= 0:
        return dt.timedelta(0)
    return dt.timedelta(seconds=(spread_key * _GOLDEN) % (2**32) * window // 2**32)


def quiet_end(local: dt.datetime, quiet: QuietHours) -> dt.datetime:
    """The end of the quiet period `local` is in (an aware local datetime), in the same zone."""
    end = _clock(quiet.end)
    candidate = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if candidate <= local:
        candidate = (local + dt.timedelta(days=1)).replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    # Rebuild in the zone so a DST change between now and the end is applied to the wall-clock time.
    zone = local.tzinfo
    naive = candidate.replace(tzinfo=None)
    return naive.replace(tzinfo=zone) if not isinstance(zone, ZoneInfo) else naive.replace(tzinfo=zone, fold=0)


def next_send_time(
    now: dt.datetime, quiet: QuietHours | None, zone: dt.tzinfo, spread_key: int = 0
) -> dt.datetime | None:
    """None when a message may be sent at `now` (aware); else the aware UTC time it waits for."""
    if quiet is None:
        return None
    local = now.astimezone(zone)
    if not is_quiet(local, quiet):
        return None
    return (quiet_end(local, quiet) + spread_offset(spread_key, quiet)).astimezone(dt.UTC)


def forecast_note(quiet: QuietHours | None, dispatcher_hours: tuple[int, ...], zone_name: str) -> str:
    """What the quiet hours do to a day's messages, for the forecast: which dispatcher runs' messages wait."""
    if quiet is None:
        return ""
    held = [hour for hour in dispatcher_hours if is_quiet(dt.datetime(2000, 1, 1, hour), quiet)]
    window = f"{quiet.end}" if quiet.spread_minutes == 0 else f"{quiet.end} + {quiet.spread_minutes} min"
    note = f"Quiet hours {quiet.start}-{quiet.end} ({zone_name}): nothing is sent then."
    if held:
        runs = ", ".join(f"{hour:02d}:00" for hour in held)
        note += f" Messages of the dispatcher run(s) at {runs} go out at {window} (the next morning for evening runs)."
    return note
