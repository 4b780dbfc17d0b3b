"""The one base class of every domain refusal."""


class Refused(ValueError):
    """The request cannot be carried out as asked and nothing was changed; the message, one
    line without personal data, says why. A task fails at once on it, without retries."""

    # A refused request is the run's recorded outcome (an audit row `refused`, workflows.common.refuse);
    # False for a stop that is no one's request (a restored database, a failed reconciliation).
    recorded = True
