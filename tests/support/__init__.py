"""Test support: real servers and engines behind fixtures, never mocks."""
