"""CRI v1: our proto subset and stubs, clients (sync and asyncio), log format, fake runtime.

Import the pieces from their modules: ``kubelet.cri.client``, ``kubelet.cri.fake``,
``kubelet.cri.logs``, ``kubelet.cri.names``; ``kubelet.cri.api_pb2`` holds the messages.
"""
