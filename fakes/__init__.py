"""Local fakes of third-party APIs used by tests and the local development stack."""
