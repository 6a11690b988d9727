"""Kafka-native pull-model lead router."""
