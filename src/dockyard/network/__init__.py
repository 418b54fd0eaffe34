"""Networking: bridge driver, IPAM, firewall chains, port publishing, embedded DNS."""
