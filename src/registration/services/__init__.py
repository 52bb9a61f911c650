"""The use cases the entry points call: registration, sign-in, password reset, organizer
notifications; and the one home of how they call Temporal (temporal_calls)."""
