"""Errors a user can fix. The CLI prints them as one message (exit code 2), never a traceback."""


class UserError(ValueError):
    """Bad input: the message names the problem and the fix."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if not fix else f"{problem}\n  fix: {fix}")


class MissingDependencyError(UserError):
    """An optional engine is not installed."""

    def __init__(self, what: str, install: str):
        super().__init__(f"{what} is not installed", f"install it with: {install}")


def parse_parameters(model, parameters: dict, what: str, fix: str):
    """``model(**parameters)``, a pydantic validation failure turned into one UserError line
    naming each bad field (``what``: e.g. 'glass-campaign parameters')."""
    from pydantic import ValidationError

    try:
        return model(**parameters)
    except ValidationError as exc:
        raise UserError(f"invalid {what}: {'; '.join(validation_messages(exc))}", fix) from None


def validation_messages(exc) -> list[str]:
    """One ``field: message (got value)`` per error of a pydantic ValidationError."""
    out = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e.get("loc", ()))
        msg = e.get("msg", "")
        val = e.get("input")
        if (e.get("type") != "missing" and isinstance(val, (str, int, float, bool)) and len(repr(val)) <= 60
                and str(val) not in msg):
            msg += f" (got {val!r})"
        out.append(f"{loc}: {msg}" if loc else msg)
    return out
