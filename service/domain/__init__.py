"""Frozen, transport-free request and result types shared by the core and the providers.

Providers see only these types (never protobuf or grpc), so an adapter can be tested
with plain values and the wire formats on either side can change independently.
"""
