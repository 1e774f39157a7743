"""Plumbing every service shares: settings, logging, metrics, health, Kafka stages, gRPC, sealing."""
