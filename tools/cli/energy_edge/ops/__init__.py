"""Operator commands: deployment manifests (`energy-edge manifest`), device provisioning (`energy-edge provision`)."""
