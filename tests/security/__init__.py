"""Attacks on minerguard itself, each kept as a named regression test (issue: trust boundaries)."""
