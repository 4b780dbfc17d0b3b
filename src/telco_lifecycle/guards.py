"""Guards every run and acting command passes before it reads or changes anything.

The date guard is the one place the clock is read: no run acts for a date after today.

Today is the database server's current date in Copenhagen, so every worker and command
agrees on it whatever its own clock says. Every other date comes from the run (its
logical date, `as_of`, the dates in its request); a future one would delete years early
(a contract due in 2030 by a run dated 2031). Nothing switches the guard off."""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterable, Mapping

from telco_lifecycle.errors import Refused

TODAY_SQL = "SELECT (now() AT TIME ZONE 'Europe/Copenhagen')::date"


class FutureDateRefused(Refused):
    """A run or command asked to act for a date after today; nothing was read or changed."""


def today(conn) -> dt.date:
    """The database server's current date in Copenhagen (ends the transaction it opened)."""
    from psycopg2.extensions import TRANSACTION_STATUS_IDLE

    idle = conn.info.transaction_status == TRANSACTION_STATUS_IDLE
    with conn.cursor() as cur:
        cur.execute(TODAY_SQL)
        day = cur.fetchone()[0]
    if idle and not conn.autocommit:
        conn.rollback()
    return day


def refuse_future_dates(conn, dates: Mapping[str, dt.date | None]) -> dt.date:
    """Refuse, naming each date, if any of `dates` (name -> date, None = not given) is after
    today; returns today."""
    day = today(conn)
    late = [f"{name} {date.isoformat()}" for name, date in dates.items() if date is not None and date > day]
    if late:
        raise FutureDateRefused(f"{', '.join(late)} {'is' if len(late) == 1 else 'are'} after today ({day}):"
                                " no run acts for a future date; nothing was read or changed")
    return day


class UnknownKeyRefused(Refused):
    """A trigger's conf holds a key the DAG does not declare (a typo such as `dryrun` would
    otherwise be ignored and the run act for real)."""


def refuse_unknown_keys(conf: Mapping, declared: Iterable[str]) -> None:
    """Refuse a conf with a key not in `declared`, naming it and the closest declared one."""
    declared = sorted(declared)
    unknown = sorted(str(key) for key in conf if key not in declared)
    if unknown:
        def hint(key: str) -> str:
            close = difflib.get_close_matches(key, declared, n=1, cutoff=0.5)
            return f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key)

        raise UnknownKeyRefused(f"unknown trigger key{'s' if len(unknown) > 1 else ''} "
                                f"{', '.join(hint(k) for k in unknown)}; this DAG takes "
                                f"{', '.join(declared) or 'no params'}; nothing was read or changed")
