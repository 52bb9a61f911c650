"""The ways in: the gRPC API, the web pages, the command line, the codec endpoint for the
Temporal UI, the container health probe."""
