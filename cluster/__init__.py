"""Running MFT on a multi-node Ray cluster: a local multi-node cluster for development and tests
(``python -m cluster.local up``), a dashboard client with token authentication, and the launcher,
KubeRay, container and runtime-environment files beside this package (see docs/cluster.md)."""
