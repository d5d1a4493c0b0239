"""The service proxy: Services + EndpointSlices → kernel NAT rules (see README.md)."""
