"""The gRPC API: the servicer, the one table of errors → status codes, protobuf ↔ domain
conversion, health and metrics."""
