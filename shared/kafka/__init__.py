"""Kafka edges: topic administration, producers, compacted-topic tables, dead letters."""
