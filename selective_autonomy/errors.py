"""One exception root for the project; each area raises a subclass."""


class SelautoError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(SelautoError):
    """Configuration is missing or inconsistent."""


class ContractError(SelautoError):
    """An event does not match its Avro contract or pydantic model."""


class DecodeError(ContractError):
    """Bytes on a topic could not be turned into a valid event."""


class SchemaRegistryError(SelautoError):
    """The Schema Registry could not be reached or refused a request."""


class DecisionError(SelautoError):
    """A gate decision lacks what its outcome needs (an execution without an action or tier, a
    deferral without a reason): a bug, refused rather than published as a half-filled record."""


class BrokerError(SelautoError):
    """The embedded broker could not be started or did not answer."""
