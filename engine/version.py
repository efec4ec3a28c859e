import datetime
import os
from importlib.metadata import PackageNotFoundError, version


def conceptlab_version() -> str:
    try:
        return version("conceptlab")
    except PackageNotFoundError:
        return "unknown"


def created_timestamp() -> str:
    """Now, in UTC, or `SOURCE_DATE_EPOCH` when set (the reproducible-builds convention), so that two runs of the
    same job, on one machine or on a cluster, can write byte-identical concept files."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = (
        datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc)
        if epoch and epoch.isdigit()
        else datetime.datetime.now(datetime.timezone.utc)
    )
    return moment.isoformat(timespec="seconds")
