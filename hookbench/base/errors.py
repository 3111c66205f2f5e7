"""User-facing errors: each names the bad thing and maps to an exit code, never a traceback."""


class HookbenchError(Exception):
    """A mistake in input, config or environment that the user can fix."""

    exit_code = 1

    def __str__(self) -> str:
        """The message and any notes added on the way out (a failed restore's), since users see str(e)."""
        return "\n".join([super().__str__(), *getattr(self, "__notes__", ())])


class ConfigError(HookbenchError):
    exit_code = 2


class DataError(HookbenchError):
    exit_code = 3


class ServerError(HookbenchError):
    """The hook server is unreachable, unhealthy, or does not offer what the config asks for."""

    exit_code = 4


class PatchError(HookbenchError):
    exit_code = 5


class ReproductionMismatch(HookbenchError):
    exit_code = 6


class ReproductionInconclusive(HookbenchError):
    """Too few items to tell whether a sampled rerun reproduces: neither equivalent nor different."""

    exit_code = 8


class NothingToCompare(HookbenchError):
    """The run to reproduce has no item scored in both arms (it failed before measuring anything)."""

    exit_code = 7


class NothingMeasured(HookbenchError):
    """The job ran but measured nothing (every answer or loss failed): a failure, never a success."""

    exit_code = 7
