"""Shared foundations every stage imports: params, registry, errors, atomic I/O, image loading, file layout."""
