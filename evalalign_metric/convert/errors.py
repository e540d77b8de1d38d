"""Errors of the converter (both are :class:`~evalalign_metric.errors.JudgeLoadError`, as the CLI reports them).

Example:
    >>> from evalalign_metric.errors import JudgeLoadError
    >>> issubclass(TokenizerMismatchError, ConversionError) and issubclass(ConversionError, JudgeLoadError)
    True
"""

from evalalign_metric.errors import JudgeLoadError


class ConversionError(JudgeLoadError):
    """The checkpoint cannot be converted as it is (missing or unexpected weights, wrong shapes...)."""


class TokenizerMismatchError(ConversionError):
    """The converted tokenizer would not give the ids the original code gives the judge."""
