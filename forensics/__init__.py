"""The signal core: stateless functions on numpy arrays.

Image loading (:mod:`forensics.io`), high-pass residuals
(:mod:`forensics.residuals`), power spectra (:mod:`forensics.spectrum`),
periodic-peak features (:mod:`forensics.peaks`) and JPEG facts
(:mod:`forensics.jpeg`). No function here modifies its input.
"""
