"""The rules of the product, with no I/O: statuses, errors, failure types, identifiers and
tokens, input rules, the clock, and the records the stores return.

The only part of `registration` that workflow code imports.
"""
