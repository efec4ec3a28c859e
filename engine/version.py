from importlib.metadata import PackageNotFoundError, version


def conceptlab_version() -> str:
    try:
        return version("conceptlab")
    except PackageNotFoundError:
        return "unknown"
