"""What only the two notes-auth services share: database engines and migrations, the Alembic
environment, settings helpers, problem+json errors, Prometheus metrics and command-line
conventions. Not part of the verification library; it may import the library, never the reverse.
"""
