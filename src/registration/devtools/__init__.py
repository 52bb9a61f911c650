"""What `make run` starts on a laptop: the launcher and the local SMTP sink.

Never imported by the service itself: aiosmtpd is only in the `dev` extra.
"""
