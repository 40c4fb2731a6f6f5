"""What runs a laptop demo or a test, never a production worker: the local Kafka/Redis/Prometheus stack,
the simulator and the replay tool."""
