"""Where the service meets the world: the database, SMTP, Temporal, password hashing."""
