"""Durable user registration: the request path, the adapters and the domain rules.

Each folder is a layer; a layer imports only the layers below it (the import-linter contracts
in pyproject.toml check this in `make test`):

    devtools/     what `make run` starts on a laptop
    bootstrap.py  the one composition root
    entrypoints/  gRPC, web pages, CLI, codec endpoint, health probe
    services/     the use cases of the request path
    adapters/     database, email, Temporal, password hashing
    domain/       the rules, with no I/O
"""
