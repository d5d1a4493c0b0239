"""Local container images, built and loaded offline.

``oci`` writes OCI image archives with the standard library; ``store`` imports, lists and
removes images in a containerd instance (via ``ctr``); ``builtin`` holds the recipes for the
images tugboat ships (pause, busybox, web).
"""
