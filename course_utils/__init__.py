"""course_utils: the reference implementation behind the diffusion course.

Modules: ``schedules`` (β schedules), ``diffusion`` (forward process, posterior, DDPM/DDIM samplers,
classifier-free guidance), ``models`` (the U-Net family), ``data`` (FashionMNIST in [-1, 1]),
``train`` (Algorithm 1, EMA, checkpoints), ``metrics`` (shipped classifier, class agreement, Fréchet
distance), ``utils`` (seeding, devices, image grids) and ``widgets`` (ipywidgets for the lessons).
Importing the package never needs Jupyter.
"""
__version__ = "0.1.0"
