"""Reference latent-diffusion generator (diffusers): synthetic images and AI
reconstructions of real photos for calibration, training and robustness tests.

Not yet implemented: tracked by the generator issue.
"""
