"""The files the lifecycle writes under LIFECYCLE_REPORTS_DIR: how they are written, and
which of them the policy says are due for removal.

Every report file goes through `ReportFile`: written under a temporary name with mode
0600 and renamed when complete, in a folder with mode 0700 that the policy governs or
declares exempt (`report_folder` refuses any other). `scan` and `due` read the folders
back for the reports_retention DAG; a file's clock is its modification time, a
Copenhagen date, so a run for `as_of` = D decides the same today and in 2031.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import hashlib
import os
import re
from pathlib import Path
from zoneinfo import ZoneInfo

from telco_lifecycle.policy import Policy, ReportFolder, load_policy
from telco_lifecycle.settings import TIMEZONE, reports_dir

DIR_MODE, FILE_MODE = 0o700, 0o600
PART_SUFFIX = ".part"
CUSTOMER = re.compile(r"(?:^|[_/])customer_(\d+)(?=[_./])")  # in a file's or its folder's name
LOCAL_TZ = ZoneInfo(TIMEZONE)


def private_dir(path: Path) -> Path:
    """`path` (and missing parents) created, and the folder itself set to 0700 whatever the umask."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    path.chmod(DIR_MODE)
    return path


def report_folder(name: str) -> Path:
    """The folder `name` under the reports directory, 0700; KeyError if the policy neither
    governs it nor declares it exempt."""
    load_policy().report_folder(name)
    return private_dir(private_dir(reports_dir()) / name)


def restrict(root: Path) -> None:
    """Folders 0700 and files 0600 below `root`: for what a library wrote there (GX Data Docs)."""
    for folder, _, files in os.walk(root):
        os.chmod(folder, DIR_MODE)
        for name in files:
            os.chmod(os.path.join(folder, name), FILE_MODE)


class ReportFile:
    """One report file (text, or bytes with `binary`): written to `<name>.part` (0600),
    renamed over `path` by `commit`; `abandon` (or an exception in a `with` block) removes
    the partial file."""

    def __init__(self, path: Path, newline: str | None = None, binary: bool = False):
        self.path, self.part = path, path.with_name(path.name + PART_SUFFIX)
        fd = os.open(self.part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        os.fchmod(fd, FILE_MODE)
        # closed by commit or abandon
        self.file = open(fd, "wb") if binary else open(fd, "w", encoding="utf-8", newline=newline)  # noqa: SIM115

    def write(self, content) -> None:
        self.file.write(content)

    def sha256(self) -> str:
        """The SHA-256 of what has been written so far (read back from disk)."""
        self.file.flush()
        with self.part.open("rb") as written:
            return hashlib.file_digest(written, "sha256").hexdigest()

    def commit(self) -> str:
        """Make the file visible under its name; its SHA-256 back."""
        digest = self.sha256()
        os.fsync(self.file.fileno())
        self.file.close()
        self.part.replace(self.path)
        return digest

    def abandon(self) -> None:
        self.file.close()
        self.part.unlink(missing_ok=True)

    def __enter__(self) -> ReportFile:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            self.abandon()
        elif not self.file.closed:
            self.commit()


def write_report(path: Path, content: str | bytes) -> str:
    """Write a whole report file atomically (0600); its SHA-256 back."""
    with ReportFile(path, binary=isinstance(content, bytes)) as out:
        out.write(content)
        return out.commit()


# --- Reading the folders back: what is there, and what is due ------------------------

@dataclasses.dataclass(frozen=True)
class FoundFile:
    """A file of a governed folder. `relative` is its path under the reports directory:
    used to find and remove it, never recorded (a run id in a name is free text)."""

    kind: str
    relative: str
    customer_id: int | None
    size: int
    written_on: dt.date
    mtime_ns: int

    def path(self, root: Path) -> Path:
        return root / self.relative

    def sha256(self, root: Path) -> str:
        with self.path(root).open("rb") as content:
            return hashlib.file_digest(content, "sha256").hexdigest()

    def record(self, root: Path) -> dict:
        """What an audit row says of the file: no name, no path."""
        return {"kind": self.kind, "customer_id": self.customer_id, "size": self.size,
                "written_on": self.written_on.isoformat(), "sha256": self.sha256(root)}


def ungoverned_folders(root: Path, policy: Policy) -> list[str]:
    """Entries of the reports directory the policy neither governs nor declares exempt."""
    known = {f.folder for f in policy.report_files} | set(policy.exempt_report_folders)
    return sorted(entry.name for entry in root.iterdir() if entry.name not in known) if root.exists() else []


def scan(root: Path, policy: Policy, customer_id: int | None = None) -> list[FoundFile]:
    """Every file of the governed folders that their rule covers (of one customer, if given)."""
    found = []
    for rule in policy.report_files:
        base = root / rule.folder
        for folder, _, names in os.walk(base):
            for name in names:
                path = Path(folder, name)
                inside = path.relative_to(base).as_posix()
                if not any(fnmatch.fnmatchcase(inside, pattern) for pattern in rule.files):
                    continue
                match = CUSTOMER.search(inside)
                owner = int(match.group(1)) if match else None
                if customer_id is not None and owner != customer_id:
                    continue
                stat = path.stat()
                written = dt.datetime.fromtimestamp(stat.st_mtime, LOCAL_TZ).date()
                found.append(FoundFile(rule.folder, path.relative_to(root).as_posix(), owner, stat.st_size,
                                       written, stat.st_mtime_ns))
    return sorted(found, key=lambda f: (f.kind, f.mtime_ns, f.relative))


def due(files: list[FoundFile], policy: Policy, as_of: dt.date) -> list[FoundFile]:
    """The files due for removal on `as_of` by their folder's rule; a file written after
    `as_of` did not exist yet on that day and is never due."""
    rules = {rule.folder: rule for rule in policy.report_files}
    existing = [f for f in files if f.written_on <= as_of]
    return [f for f in existing if _due(f, rules[f.kind], existing, as_of)]


def _due(file: FoundFile, rule: ReportFolder, existing: list[FoundFile], as_of: dt.date) -> bool:
    period = dt.timedelta(days=rule.period_days)
    if rule.clock == "written":
        return file.written_on + period <= as_of
    newer = [f.written_on for f in existing if f.kind == file.kind and f.mtime_ns > file.mtime_ns]
    return bool(newer) and min(newer) + period <= as_of
