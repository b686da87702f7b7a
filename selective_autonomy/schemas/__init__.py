"""Event contracts (Avro), their pydantic mirrors, and process schemas."""
