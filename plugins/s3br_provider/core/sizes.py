"""Byte units."""

MiB = 1024 * 1024
