"""The pages behind the emails: a small web front that is a client of the gRPC API."""
