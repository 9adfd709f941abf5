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
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UserError(f"invalid {what}: {msgs}", fix) from None
