"""Kafka plumbing: client settings per broker profile, Avro serialization, topics, the embedded
broker launcher, dead letters and the faust app factory."""
