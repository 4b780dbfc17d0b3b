"""The one base class of every domain refusal."""


class Refused(ValueError):
    """The request cannot be carried out as asked and nothing was changed; the message, one
    line without personal data, says why. A task fails at once on it, without retries."""
