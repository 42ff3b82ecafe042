"""Labelled image folders, manifests, perturbations and splits."""
