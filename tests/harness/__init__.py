"""Test harness: real local servers and containers that stand in for the internet."""
