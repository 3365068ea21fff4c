"""Tests of digits_cli."""
