"""The database: tables, one store per concern, the schema's migrations and their command.

Every write is idempotent: Temporal runs activities at least once.
"""
