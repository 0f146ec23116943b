"""course_utils: the reference implementation behind the diffusion course.

Modules: ``schedules`` (β schedules), ``diffusion`` (forward process, posterior, DDPM/DDIM samplers,
classifier-free guidance), ``models`` (the U-Net family), ``data`` (FashionMNIST in [-1, 1]),
``train`` (Algorithm 1, EMA, checkpoints), ``metrics`` (shipped classifier, class agreement, Fréchet
distance), ``utils`` (seeding, devices, image grids), ``widgets`` (ipywidgets for the lessons) and
``diagrams`` (the lessons' drawings: U-Net, forward/reverse chain, guidance, CLIP). Also: ``origins``
(the ink drop: particles under the forward process), ``elbo`` (the ELBO term by term), ``score``,
``captions``, ``clip``, ``attention``, ``text2image``, ``checks`` (the learner-facing checks), ``lessons``
(the lesson registry), ``checkpoints``, ``pretrained``, ``validation`` and ``autograde`` (the grading
command). Importing the package never needs Jupyter.
"""
__version__ = "0.1.0"
