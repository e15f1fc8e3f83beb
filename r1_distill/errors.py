"""Errors a user can fix: the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input, named with what to do about it. Never shown as a traceback."""

    exit_code = 2


class MissingExtra(UserError):
    """A path needs an optional dependency that is not installed."""

    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the '{package}' package, which is not installed: "
            f"pip install 'r1-distill[{extra}]' (or pip install {package})"
        )


def require(module: str, extra: str, purpose: str):
    """Import an optional dependency, or fail with the install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(module.split(".")[0], extra, purpose) from None
