"""ai-collect shared package: the one place code used by more than one process lives.

- ``settings``: configuration from the environment (one class per process).
- ``db``: engine/session factory, embedded PostgreSQL, Alembic migrations.
- ``rpc``: gRPC server bootstrap, auth and error-mapping interceptors, health.
- ``errors``: the domain error hierarchy, mapped to gRPC status codes in ``rpc.errors``.
- ``emulator``: the Intuit emulator (OAuth 2.0, QBO API v3, signed webhooks).
- ``integration/v1``, ``matching/v1``: stubs generated from ``protos/`` (do not edit).
"""
