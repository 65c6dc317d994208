"""The real OpenStack Glance (glance-api from PyPI) on loopback for the guest_images tests and benchmarks."""
