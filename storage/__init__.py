"""Storage adapters for the ``supervision.ports.DocumentStore`` port: in-memory (tests), TinyDB
(the embedded default) and Azure Blob Storage (several instances)."""
