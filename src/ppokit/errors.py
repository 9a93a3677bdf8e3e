"""Errors that ppokit reports to a user as one line, without a traceback."""

from __future__ import annotations


class PPOKitError(Exception):
    """Base class: the CLI prints ``str(error)`` and exits with :attr:`exit_code`."""

    exit_code = 2


class ConfigError(PPOKitError):
    """A configuration value is out of range, inconsistent or unsupported."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str]]:
        return type(self), (self.field, self.message)  # a worker's error reaches the parent whole


class CheckpointError(PPOKitError):
    """A checkpoint is missing, corrupt, or does not match what it is loaded into."""


class NonFiniteError(PPOKitError):
    """A loss, gradient or parameter became NaN or infinite during an update."""

    exit_code = 3

    def __init__(self, metric: str, update: int) -> None:
        super().__init__(
            f"non-finite {metric} at update {update}; training stopped, "
            "the last good checkpoint is kept (try a lower learning rate or max_grad_norm)"
        )
        self.metric = metric
        self.update = update

    def __reduce__(self) -> tuple[type[NonFiniteError], tuple[str, int]]:
        return type(self), (self.metric, self.update)


class NonFiniteEnvError(PPOKitError):
    """An env returned a NaN or infinite observation or reward: named where it entered."""

    exit_code = 3

    def __init__(self, what: str, where: str = "") -> None:
        super().__init__(f"{where}the env returned a non-finite {what}; training stopped, the last good checkpoint "
                         "is kept (check the env: a NaN there is not a learning-rate problem)")  # fmt: skip
        self.what = what
        self.where = where

    def __reduce__(self) -> tuple[type[NonFiniteEnvError], tuple[str, str]]:
        return type(self), (self.what, self.where)
