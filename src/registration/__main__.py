"""`python -m registration`: the command line client of the gRPC API (see entrypoints/cli.py)."""

from registration.entrypoints.cli import main

if __name__ == "__main__":
    main()
