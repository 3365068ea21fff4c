"""Tests of loadtest."""
